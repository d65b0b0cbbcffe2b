package config

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// Setting is one row of the table, read from the tags of a Settings field.
type Setting struct {
	Key     string   // flag name and YAML key; "" for environment-only settings
	Env     []string // environment variables, first set one wins
	Default string   // in flag syntax; "" for none
	DefDoc  string   // shown instead of Default when the default is computed
	Group   string
	Help    string
	Cmds    []string
	Secret  bool
	InFile  bool // may appear in the config file
	Bool    bool
	field   int
}

// Name is how the setting is referred to in messages: its flag or its
// environment variable.
func (s Setting) Name() string {
	if s.Key != "" {
		return "--" + s.Key
	}
	return s.Env[0]
}

// For reports whether subcommand cmd takes the setting.
func (s Setting) For(cmd string) bool { return slices.Contains(s.Cmds, cmd) }

// DefaultDoc is the default as documented.
func (s Setting) DefaultDoc() string {
	switch {
	case s.DefDoc != "":
		return s.DefDoc
	case s.Default != "":
		return s.Default
	case s.Bool:
		return "false"
	}
	return ""
}

// Table lists every setting in declaration order.
func Table() []Setting {
	t := reflect.TypeFor[Settings]()
	var out []Setting
	for i := range t.NumField() {
		f := t.Field(i)
		s := Setting{
			Key:     f.Tag.Get("key"),
			Default: f.Tag.Get("default"),
			DefDoc:  f.Tag.Get("defdoc"),
			Group:   f.Tag.Get("group"),
			Help:    f.Tag.Get("help"),
			Secret:  f.Tag.Get("secret") == "true",
			Bool:    f.Type.Kind() == reflect.Bool,
			field:   i,
		}
		if s.Key == "-" {
			s.Key = ""
		}
		if e := f.Tag.Get("env"); e != "" {
			s.Env = strings.Split(e, ",")
		}
		cmds := f.Tag.Get("cmds")
		if cmds == "" {
			cmds = "mount,check"
		}
		s.Cmds = strings.Split(cmds, ",")
		s.InFile = s.Key != "" && !s.Secret && f.Tag.Get("file") != "no"
		out = append(out, s)
	}
	return out
}

// Lookup finds a setting by flag/YAML key.
func Lookup(key string) (Setting, bool) {
	for _, s := range Table() {
		if s.Key != "" && s.Key == key {
			return s, true
		}
	}
	return Setting{}, false
}

// set parses v into the setting's field of st.
func (s Setting) set(st *Settings, v string) error {
	f := reflect.ValueOf(st).Elem().Field(s.field)
	if p, ok := f.Addr().Interface().(interface{ Set(string) error }); ok {
		return p.Set(v)
	}
	switch f.Kind() {
	case reflect.String:
		f.SetString(v)
	case reflect.Bool:
		b, err := parseBool(v)
		if err != nil {
			return err
		}
		f.SetBool(b)
	case reflect.Int:
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("%q is not a whole number", v)
		}
		f.SetInt(int64(n))
	default:
		panic("config: no parser for " + f.Type().String())
	}
	return nil
}

// get formats the setting's current value in flag syntax.
func (s Setting) get(st *Settings) string {
	f := reflect.ValueOf(st).Elem().Field(s.field)
	if p, ok := f.Interface().(fmt.Stringer); ok {
		return p.String()
	}
	return fmt.Sprint(f.Interface())
}

func parseBool(v string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "t", "true", "yes", "y", "on":
		return true, nil
	case "0", "f", "false", "no", "n", "off":
		return false, nil
	}
	return false, fmt.Errorf("%q is not true or false", v)
}

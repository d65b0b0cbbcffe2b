package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

// Loaded is the outcome of Parse: the settings, where each came from, and
// the positional arguments.
type Loaded struct {
	Settings
	// Source says where each key's value came from: "default", "file PATH",
	// "env NAME" or "flag". Keyed by Setting.Name().
	Source map[string]string
	Args   []string
}

// Parse reads the settings of subcommand cmd from args (flags and
// positional arguments may be mixed), the environment through getenv, and
// the config file named by --config or BLOBFS_CONFIG. usage, when not nil,
// prints the help; -h and --help return flag.ErrHelp. extra, when given,
// adds flags that are not settings (e.g. unmount's --lazy) to the set.
func Parse(cmd string, args []string, getenv func(string) string, usage func(*flag.FlagSet), extra ...func(*flag.FlagSet)) (*Loaded, error) {
	table := Table()
	fset := flag.NewFlagSet("blobfs "+cmd, flag.ContinueOnError)
	fset.SetOutput(io.Discard)
	// flag calls Usage on any parse error; the help is printed only when
	// asked for, below, so that a typo gets one line, not the whole help.
	fset.Usage = func() {}
	raw := map[int]string{} // field index → flag value, applied last
	for _, s := range table {
		if s.Key == "" || !s.For(cmd) {
			continue
		}
		fset.Var(&rawValue{s: s, raw: raw}, s.Key, s.Help)
	}
	for _, x := range extra {
		x(fset)
	}
	var pos []string
	for {
		if err := fset.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				if usage != nil {
					usage(fset)
				}
				return nil, err
			}
			return nil, flagError(fset, cmd, err)
		}
		rest := fset.Args()
		if len(rest) == 0 {
			break
		}
		// flag stops at the first positional argument; go on after it so
		// that "blobfs mount /mnt --account a" works. After "--" everything
		// is positional.
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}

	l := &Loaded{Source: map[string]string{}, Args: pos}
	for _, s := range table {
		if s.Default != "" {
			if err := s.set(&l.Settings, s.Default); err != nil {
				panic(fmt.Sprintf("config: default of %s: %v", s.Name(), err))
			}
		}
		l.Source[s.Name()] = "default"
	}

	cfgSet, _ := Lookup("config")
	path := raw[cfgSet.field]
	if path == "" {
		path = envValue(cfgSet, getenv)
	}
	if path != "" && cfgSet.For(cmd) {
		if err := l.loadFile(path, cmd); err != nil {
			return nil, err
		}
	}
	for _, s := range table {
		if !s.For(cmd) {
			continue
		}
		for _, name := range s.Env {
			v := getenv(name)
			if v == "" {
				continue
			}
			if err := s.set(&l.Settings, v); err != nil {
				return nil, fmt.Errorf("environment variable %s: %w", name, err)
			}
			l.Source[s.Name()] = "env " + name
			break
		}
	}
	for _, s := range table {
		if v, ok := raw[s.field]; ok {
			if err := s.set(&l.Settings, v); err != nil {
				return nil, fmt.Errorf("--%s: %w", s.Key, err)
			}
			l.Source[s.Name()] = "flag"
		}
	}
	return l, nil
}

// loadFile applies a YAML config file. Its keys are the flag names; a key
// that names no setting, or a setting the file may not hold (a secret, the
// config path itself), is an error, so that a typo does not silently fall
// back to a default.
func (l *Loaded) loadFile(path, cmd string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	var fields []reflect.StructField
	var inFile []Setting
	for _, s := range Table() {
		if !s.InFile {
			continue
		}
		fields = append(fields, reflect.StructField{
			Name: fmt.Sprintf("F%d", len(fields)),
			Type: reflect.TypeFor[yaml.Node](),
			Tag:  reflect.StructTag(fmt.Sprintf("yaml:%q", s.Key)),
		})
		inFile = append(inFile, s)
	}
	doc := reflect.New(reflect.StructOf(fields))
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(doc.Interface()); err != nil && !errors.Is(err, io.EOF) {
		msg := err.Error()
		msg = strings.ReplaceAll(msg, "in type "+doc.Elem().Type().String(), "")
		return fmt.Errorf("config file %s: %s (keys are the flag names without '--'; secrets belong in files named by account-key-file or sas-file)", path, strings.TrimSpace(msg))
	}
	for i, s := range inFile {
		n := doc.Elem().Field(i).Interface().(yaml.Node)
		if n.Kind == 0 {
			continue
		}
		if n.Kind != yaml.ScalarNode {
			return fmt.Errorf("config file %s line %d: %s must be a single value", path, n.Line, s.Key)
		}
		if !s.For(cmd) {
			continue
		}
		if err := s.set(&l.Settings, n.Value); err != nil {
			return fmt.Errorf("config file %s line %d: %s: %w", path, n.Line, s.Key, err)
		}
		l.Source[s.Name()] = "file " + path
	}
	return nil
}

func envValue(s Setting, getenv func(string) string) string {
	for _, name := range s.Env {
		if v := getenv(name); v != "" {
			return v
		}
	}
	return ""
}

// rawValue records a flag's text; Parse applies it after the file and the
// environment so that flags win whatever their order.
type rawValue struct {
	s   Setting
	raw map[int]string
}

func (r *rawValue) String() string {
	if r == nil || r.raw == nil {
		return ""
	}
	return r.raw[r.s.field]
}

func (r *rawValue) Set(v string) error {
	// Parse now so that a bad value is reported with its flag.
	var scratch Settings
	if err := r.s.set(&scratch, v); err != nil {
		return err
	}
	r.raw[r.s.field] = v
	return nil
}

func (r *rawValue) IsBoolFlag() bool { return r.s.Bool }

// Get returns a setting's current value in flag syntax; secrets come back
// as "(set)" or "".
func (l *Loaded) Get(s Setting) string {
	v := s.get(&l.Settings)
	if s.Secret && v != "" {
		return "(set)"
	}
	return v
}

// flagError rewrites flag's "flag provided but not defined: -read-onyl"
// into one line that names the closest flag there is.
func flagError(fset *flag.FlagSet, cmd string, err error) error {
	const undefined = "flag provided but not defined: "
	msg := err.Error()
	name, ok := strings.CutPrefix(msg, undefined)
	if !ok {
		return fmt.Errorf("%w (see blobfs %s --help)", err, cmd)
	}
	name = strings.TrimLeft(name, "-")
	var names []string
	fset.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	if best := Closest(name, names); best != "" {
		return fmt.Errorf("unknown flag --%s: did you mean --%s? (see blobfs %s --help)", name, best, cmd)
	}
	return fmt.Errorf("unknown flag --%s (see blobfs %s --help)", name, cmd)
}

// Closest returns the candidate a mistyped name most likely meant, or ""
// when none is close enough to suggest.
func Closest(name string, candidates []string) string {
	best, bestD := "", 0
	for _, c := range candidates {
		if d := editDistance(name, c); best == "" || d < bestD {
			best, bestD = c, d
		}
	}
	if best != "" && (bestD <= 2 || bestD <= len(name)/3 || len(name) >= 3 && strings.HasPrefix(best, name)) {
		return best
	}
	return ""
}

// editDistance is the Damerau-Levenshtein distance (adjacent swaps count
// one), which catches the usual typos: --read-onyl, --acount.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

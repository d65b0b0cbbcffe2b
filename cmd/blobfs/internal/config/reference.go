package config

import (
	"fmt"
	"io"
	"strings"
)

// groups in the order help and the README show them.
func groups(cmd string) []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range Table() {
		if (cmd == "" || s.For(cmd)) && !seen[s.Group] {
			seen[s.Group] = true
			out = append(out, s.Group)
		}
	}
	return out
}

// PrintHelp writes the settings subcommand cmd takes, grouped, with their
// environment variables and defaults.
func PrintHelp(w io.Writer, cmd string) {
	for _, g := range groups(cmd) {
		fmt.Fprintf(w, "\n%s:\n", g)
		for _, s := range Table() {
			if s.Group != g || !s.For(cmd) {
				continue
			}
			name := s.Name()
			if s.Key != "" && !s.Bool {
				name += " VALUE"
			}
			fmt.Fprintf(w, "  %s\n      %s", name, s.Help)
			var extra []string
			if d := s.DefaultDoc(); d != "" && !s.Bool {
				extra = append(extra, "default "+d)
			}
			if len(s.Env) > 0 && s.Key != "" {
				extra = append(extra, "env "+strings.Join(s.Env, ", "))
			}
			if len(extra) > 0 {
				fmt.Fprintf(w, " (%s)", strings.Join(extra, "; "))
			}
			fmt.Fprintln(w)
		}
	}
}

// Reference is the README's configuration reference, in Markdown.
func Reference() string {
	var b strings.Builder
	b.WriteString("Every setting can be given as a flag, an environment variable or a key of the YAML file named by `--config`; ")
	b.WriteString("the file's keys are the flag names without `--`, and unknown keys are errors. ")
	b.WriteString("Precedence, highest first: **flag > environment > config file > default**.\n")
	for _, g := range groups("") {
		fmt.Fprintf(&b, "\n#### %s\n\n| Flag / file key | Environment | Default | Meaning |\n|---|---|---|---|\n", g)
		for _, s := range Table() {
			if s.Group != g {
				continue
			}
			key := "—"
			if s.Key != "" {
				key = "`--" + s.Key + "`"
				if !s.InFile {
					key += " (not in the file)"
				}
			}
			var env []string
			for _, e := range s.Env {
				env = append(env, "`"+e+"`")
			}
			def := s.DefaultDoc()
			if def != "" {
				def = "`" + def + "`"
			}
			help := s.Help
			if cmds := strings.Join(s.Cmds, ", "); cmds != "mount, check" {
				help += " (" + cmds + ")"
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", key, strings.Join(env, ", "), def, strings.ReplaceAll(help, "|", `\|`))
		}
	}
	return b.String()
}

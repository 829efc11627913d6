package nodeconfig

import (
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

type unit struct {
	path string
	args []string // ExecStart after the server/agent subcommand
	env  map[string]string
}

// readUnit finds the program's unit file and its drop-ins
// (<unit>.service.d/*.conf) and returns ExecStart's flags and the
// environment. No unit is not an error.
func (o Options) readUnit() (unit, *FileError) {
	name := UnitName(o.Program, o.Role) + ".service"
	path := o.Unit
	if path == "" {
		for _, d := range unitDirs {
			p := o.root(d + "/" + name)
			if _, err := os.Stat(p); err == nil {
				path = p
				break
			}
		}
	}
	u := unit{env: map[string]string{}}
	if path == "" {
		return u, nil
	}
	files := []string{path}
	if drop, err := filepath.Glob(path + ".d/*.conf"); err == nil {
		sort.Strings(drop)
		files = append(files, drop...)
	}
	var exec []string
	var envFiles []string
	for i, f := range files {
		b, err := readSmall(f)
		if err != nil {
			if i == 0 {
				return u, &FileError{f, err}
			}
			continue
		}
		ex, env, ef := ParseUnit(b)
		if ex != nil {
			exec = ex
		}
		for k, v := range env {
			u.env[k] = v
		}
		envFiles = append(envFiles, ef...)
	}
	for _, ef := range envFiles {
		ef = strings.NewReplacer("%N", strings.TrimSuffix(name, ".service"), "%n", name).Replace(ef)
		optional := strings.HasPrefix(ef, "-")
		ef = o.root(strings.TrimPrefix(ef, "-"))
		b, err := readSmall(ef)
		if err != nil {
			if !optional && !errors.Is(err, os.ErrNotExist) {
				return u, &FileError{ef, err}
			}
			continue
		}
		for k, v := range ParseEnvFile(b) {
			u.env[k] = v
		}
	}
	u.path = path
	u.args = afterSubcommand(exec)
	return u, nil
}

// afterSubcommand returns the arguments after "server" or "agent".
func afterSubcommand(argv []string) []string {
	for i, a := range argv {
		if a == "server" || a == "agent" {
			return argv[i+1:]
		}
	}
	if len(argv) > 1 {
		return argv[1:]
	}
	return nil
}

// ParseUnit returns the last ExecStart= command line of a unit file (split
// like systemd does, with backslash continuations), its Environment=
// assignments and EnvironmentFile= paths. A reset "ExecStart=" returns an
// empty non-nil command; no ExecStart returns nil.
func ParseUnit(b []byte) (exec []string, env map[string]string, envFiles []string) {
	env = map[string]string{}
	for _, line := range logicalLines(string(b)) {
		key, val, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		switch strings.TrimSpace(key) {
		case "ExecStart":
			val = strings.TrimSpace(val)
			val = strings.TrimLeft(val, "-@+!:")
			exec = SplitCommand(val)
			if exec == nil {
				exec = []string{}
			}
		case "Environment":
			for _, w := range SplitCommand(val) {
				if k, v, ok := strings.Cut(w, "="); ok {
					env[k] = v
				}
			}
		case "EnvironmentFile":
			if v := strings.TrimSpace(val); v != "" {
				envFiles = append(envFiles, v)
			}
		}
	}
	return exec, env, envFiles
}

// logicalLines joins backslash-continued lines and drops comments.
func logicalLines(s string) []string {
	var out []string
	var cur strings.Builder
	for _, l := range strings.Split(s, "\n") {
		l = strings.TrimRight(l, "\r")
		t := strings.TrimSpace(l)
		if cur.Len() == 0 && (strings.HasPrefix(t, "#") || strings.HasPrefix(t, ";")) {
			continue
		}
		if strings.HasSuffix(l, "\\") {
			cur.WriteString(strings.TrimSuffix(l, "\\"))
			cur.WriteByte(' ')
			continue
		}
		cur.WriteString(l)
		out = append(out, strings.TrimSpace(cur.String()))
		cur.Reset()
	}
	if cur.Len() > 0 {
		out = append(out, strings.TrimSpace(cur.String()))
	}
	return out
}

// SplitCommand splits a command line into words: whitespace separates,
// single and double quotes group, a backslash escapes the next character
// outside single quotes.
func SplitCommand(s string) []string {
	var out []string
	var w strings.Builder
	in, quote, esc := false, byte(0), false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case esc:
			w.WriteByte(c)
			esc = false
		case c == '\\' && quote != '\'':
			esc, in = true, true
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				w.WriteByte(c)
			}
		case c == '\'' || c == '"':
			quote, in = c, true
		case c == ' ' || c == '\t' || c == '\n':
			if in {
				out = append(out, w.String())
				w.Reset()
				in = false
			}
		default:
			w.WriteByte(c)
			in = true
		}
	}
	if in {
		out = append(out, w.String())
	}
	return out
}

// ParseEnvFile reads KEY=VALUE lines (comments, blank lines, optional
// quotes, an optional "export ").
func ParseEnvFile(b []byte) map[string]string {
	out := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, ";") {
			continue
		}
		l = strings.TrimPrefix(l, "export ")
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		out[strings.TrimSpace(k)] = v
	}
	return out
}

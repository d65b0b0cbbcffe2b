package metrics

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Sample is one line of the text format.
type Sample struct {
	Name   string
	Labels map[string]string
	Value  float64
}

// Samples is a parsed scrape.
type Samples []Sample

// ParseText parses the Prometheus text format strictly enough to catch
// what a scraper would refuse: samples without a TYPE, malformed labels or
// values. blobfs stats reads the daemon's metrics with it, and tests check
// the endpoint's output with it.
func ParseText(r io.Reader) (Samples, error) {
	var out Samples
	types := map[string]string{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		t := sc.Text()
		if t == "" {
			continue
		}
		if strings.HasPrefix(t, "#") {
			f := strings.Fields(t)
			if len(f) >= 4 && f[1] == "TYPE" {
				switch f[3] {
				case "counter", "gauge", "histogram", "summary", "untyped":
				default:
					return nil, fmt.Errorf("line %d: unknown type %q", line, f[3])
				}
				types[f[2]] = f[3]
			}
			continue
		}
		s, err := parseSample(t)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		base := s.Name
		if _, ok := types[base]; !ok {
			for _, suf := range []string{"_bucket", "_sum", "_count"} {
				if b := strings.TrimSuffix(base, suf); b != base && types[b] == "histogram" {
					base = b
				}
			}
		}
		if _, ok := types[base]; !ok {
			return nil, fmt.Errorf("line %d: sample %s has no # TYPE line", line, s.Name)
		}
		out = append(out, s)
	}
	return out, sc.Err()
}

func parseSample(t string) (Sample, error) {
	s := Sample{Labels: map[string]string{}}
	i := strings.IndexAny(t, "{ ")
	if i <= 0 {
		return s, fmt.Errorf("malformed sample %q", t)
	}
	s.Name = t[:i]
	rest := t[i:]
	if rest[0] == '{' {
		rest = rest[1:]
		for {
			rest = strings.TrimLeft(rest, " ,")
			if strings.HasPrefix(rest, "}") {
				rest = rest[1:]
				break
			}
			eq := strings.Index(rest, `="`)
			if eq <= 0 {
				return s, fmt.Errorf("malformed labels in %q", t)
			}
			name := rest[:eq]
			rest = rest[eq+2:]
			var val strings.Builder
			closed := false
			for j := 0; j < len(rest); j++ {
				c := rest[j]
				if c == '\\' && j+1 < len(rest) {
					j++
					switch rest[j] {
					case 'n':
						val.WriteByte('\n')
					default:
						val.WriteByte(rest[j])
					}
					continue
				}
				if c == '"' {
					rest = rest[j+1:]
					closed = true
					break
				}
				val.WriteByte(c)
			}
			if !closed {
				return s, fmt.Errorf("unterminated label value in %q", t)
			}
			s.Labels[name] = val.String()
		}
	}
	f := strings.Fields(rest)
	if len(f) < 1 || len(f) > 2 {
		return s, fmt.Errorf("malformed value in %q", t)
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return s, fmt.Errorf("value of %q: %w", t, err)
	}
	s.Value = v
	return s, nil
}

// Sum adds the values of the samples named name whose labels include all
// of match (pairs of name, value).
func (ss Samples) Sum(name string, match ...string) float64 {
	var total float64
next:
	for _, s := range ss {
		if s.Name != name {
			continue
		}
		for i := 0; i+1 < len(match); i += 2 {
			if s.Labels[match[i]] != match[i+1] {
				continue next
			}
		}
		total += s.Value
	}
	return total
}

// Has reports whether any sample is named name.
func (ss Samples) Has(name string) bool {
	for _, s := range ss {
		if s.Name == name {
			return true
		}
	}
	return false
}

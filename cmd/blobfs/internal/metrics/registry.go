// Package metrics keeps blobfs's counters, gauges and histograms and writes
// them in the Prometheus text exposition format (version 0.0.4). It is a
// few hundred lines instead of a client library dependency.
package metrics

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Registry holds metric families in registration order.
type Registry struct {
	mu       sync.Mutex
	families []family
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{} }

type family interface {
	write(w io.Writer)
}

func (r *Registry) add(f family) {
	r.mu.Lock()
	r.families = append(r.families, f)
	r.mu.Unlock()
}

// WriteText writes every family in the text format.
func (r *Registry) WriteText(w io.Writer) {
	r.mu.Lock()
	fams := append([]family(nil), r.families...)
	r.mu.Unlock()
	for _, f := range fams {
		f.write(w)
	}
}

// Text is WriteText into a string.
func (r *Registry) Text() string {
	var b strings.Builder
	r.WriteText(&b)
	return b.String()
}

// Handler serves the registry at any path.
func (r *Registry) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		r.WriteText(w)
	})
}

// labelKey joins label values; \xff cannot occur in UTF-8 text.
func labelKey(values []string) string { return strings.Join(values, "\xff") }

func header(w io.Writer, name, help, typ string) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, escapeHelp(help), name, typ)
}

func labels(names, values []string, extra ...string) string {
	if len(names) == 0 && len(extra) == 0 {
		return ""
	}
	var parts []string
	for i, n := range names {
		parts = append(parts, n+`="`+escapeLabel(values[i])+`"`)
	}
	for i := 0; i+1 < len(extra); i += 2 {
		parts = append(parts, extra[i]+`="`+escapeLabel(extra[i+1])+`"`)
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func escapeLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`).Replace(s)
}

func escapeHelp(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(s)
}

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, +1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// CounterVec is a counter with labels.
type CounterVec struct {
	name, help string
	labels     []string
	mu         sync.Mutex
	vals       map[string]*counterCell
}

type counterCell struct {
	values []string
	v      float64
}

// NewCounter registers a counter family.
func (r *Registry) NewCounter(name, help string, labelNames ...string) *CounterVec {
	c := &CounterVec{name: name, help: help, labels: labelNames, vals: map[string]*counterCell{}}
	r.add(c)
	return c
}

// Add adds d (≥ 0) to the counter with these label values.
func (c *CounterVec) Add(d float64, labelValues ...string) {
	if len(labelValues) != len(c.labels) {
		panic(fmt.Sprintf("metrics: %s takes %d labels", c.name, len(c.labels)))
	}
	k := labelKey(labelValues)
	c.mu.Lock()
	cell := c.vals[k]
	if cell == nil {
		cell = &counterCell{values: append([]string(nil), labelValues...)}
		c.vals[k] = cell
	}
	cell.v += d
	c.mu.Unlock()
}

// Inc adds one.
func (c *CounterVec) Inc(labelValues ...string) { c.Add(1, labelValues...) }

// Value reads one counter (for stats and tests).
func (c *CounterVec) Value(labelValues ...string) float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cell := c.vals[labelKey(labelValues)]; cell != nil {
		return cell.v
	}
	return 0
}

func (c *CounterVec) write(w io.Writer) {
	header(w, c.name, c.help, "counter")
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.labels) == 0 && len(c.vals) == 0 {
		fmt.Fprintf(w, "%s 0\n", c.name)
		return
	}
	for _, k := range sortedKeys(c.vals) {
		cell := c.vals[k]
		fmt.Fprintf(w, "%s%s %s\n", c.name, labels(c.labels, cell.values), formatFloat(cell.v))
	}
}

// GaugeFunc is a gauge (or counter kept elsewhere) read when scraped.
type GaugeFunc struct {
	name, help, typ string
	fn              func() float64
}

// NewGaugeFunc registers a gauge whose value fn gives at scrape time.
func (r *Registry) NewGaugeFunc(name, help string, fn func() float64) {
	r.add(&GaugeFunc{name: name, help: help, typ: "gauge", fn: fn})
}

// NewCounterFunc registers a counter kept by someone else (e.g. the
// filesystem's cache hit count), read at scrape time.
func (r *Registry) NewCounterFunc(name, help string, fn func() float64) {
	r.add(&GaugeFunc{name: name, help: help, typ: "counter", fn: fn})
}

func (g *GaugeFunc) write(w io.Writer) {
	header(w, g.name, g.help, g.typ)
	fmt.Fprintf(w, "%s %s\n", g.name, formatFloat(g.fn()))
}

// funcVec is a counter or gauge with one label whose values fn gives at
// scrape time.
type funcVec struct {
	name, help, typ, label string
	fn                     func() map[string]float64
}

// NewCounterFuncVec registers a counter kept elsewhere, by one label.
func (r *Registry) NewCounterFuncVec(name, help, label string, fn func() map[string]float64) {
	r.add(&funcVec{name: name, help: help, typ: "counter", label: label, fn: fn})
}

func (f *funcVec) write(w io.Writer) {
	header(w, f.name, f.help, f.typ)
	vals := f.fn()
	for _, k := range sortedKeys(vals) {
		fmt.Fprintf(w, "%s%s %s\n", f.name, labels([]string{f.label}, []string{k}), formatFloat(vals[k]))
	}
}

// HistogramVec is a histogram with labels and fixed buckets.
type HistogramVec struct {
	name, help string
	labels     []string
	buckets    []float64 // upper bounds, ascending, without +Inf
	mu         sync.Mutex
	vals       map[string]*histCell
}

type histCell struct {
	values []string
	counts []uint64 // per bucket, not cumulative; last is +Inf
	sum    float64
	n      uint64
}

// NewHistogram registers a histogram family.
func (r *Registry) NewHistogram(name, help string, buckets []float64, labelNames ...string) *HistogramVec {
	b := append([]float64(nil), buckets...)
	sort.Float64s(b)
	h := &HistogramVec{name: name, help: help, labels: labelNames, buckets: b, vals: map[string]*histCell{}}
	r.add(h)
	return h
}

// Observe records one value.
func (h *HistogramVec) Observe(v float64, labelValues ...string) {
	if len(labelValues) != len(h.labels) {
		panic(fmt.Sprintf("metrics: %s takes %d labels", h.name, len(h.labels)))
	}
	k := labelKey(labelValues)
	h.mu.Lock()
	defer h.mu.Unlock()
	cell := h.vals[k]
	if cell == nil {
		cell = &histCell{values: append([]string(nil), labelValues...), counts: make([]uint64, len(h.buckets)+1)}
		h.vals[k] = cell
	}
	i := sort.SearchFloat64s(h.buckets, v) // first bound ≥ v
	cell.counts[i]++
	cell.sum += v
	cell.n++
}

func (h *HistogramVec) write(w io.Writer) {
	header(w, h.name, h.help, "histogram")
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, k := range sortedKeys(h.vals) {
		cell := h.vals[k]
		var cum uint64
		for i, b := range h.buckets {
			cum += cell.counts[i]
			fmt.Fprintf(w, "%s_bucket%s %d\n", h.name, labels(h.labels, cell.values, "le", formatFloat(b)), cum)
		}
		cum += cell.counts[len(h.buckets)]
		fmt.Fprintf(w, "%s_bucket%s %d\n", h.name, labels(h.labels, cell.values, "le", "+Inf"), cum)
		fmt.Fprintf(w, "%s_sum%s %s\n", h.name, labels(h.labels, cell.values), formatFloat(cell.sum))
		fmt.Fprintf(w, "%s_count%s %d\n", h.name, labels(h.labels, cell.values), cell.n)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

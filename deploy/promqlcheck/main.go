// Command promqlcheck parses every rule expression of PrometheusRule
// manifests (or plain Prometheus rule files) with the Prometheus PromQL
// parser, and checks alert fields the way `promtool check rules` does:
// a name, a parseable `for`, and label and annotation templates that are
// non-empty. It prints "metric: NAME" for every metric name an
// expression selects.
//
// It is its own module so that k3scert's go.mod does not carry
// github.com/prometheus/prometheus and the dependency upgrades that module
// requires; internal/exporter/deploytest runs it with `go run`.
//
//	go run . ../kustomize/prometheus-operator/prometheusrule.yaml
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
	"sigs.k8s.io/yaml"
)

type rule struct {
	Alert       string            `json:"alert,omitempty"`
	Record      string            `json:"record,omitempty"`
	Expr        string            `json:"expr"`
	For         string            `json:"for,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type group struct {
	Name     string `json:"name"`
	Interval string `json:"interval,omitempty"`
	Rules    []rule `json:"rules"`
}

type doc struct {
	APIVersion string          `json:"apiVersion,omitempty"`
	Kind       string          `json:"kind,omitempty"`
	Metadata   json.RawMessage `json:"metadata,omitempty"`
	Groups     []group         `json:"groups,omitempty"` // a plain rule file
	Spec       struct {
		Groups []group `json:"groups"`
	} `json:"spec"`
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: promqlcheck FILE... (- for stdin)")
		os.Exit(2)
	}
	n, bad := 0, 0
	for _, f := range os.Args[1:] {
		var b []byte
		var err error
		if f == "-" {
			b, err = io.ReadAll(os.Stdin)
		} else {
			b, err = os.ReadFile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "promqlcheck:", err)
			os.Exit(2)
		}
		for _, d := range splitYAML(b) {
			var x doc
			if err := yaml.UnmarshalStrict(d, &x, yaml.DisallowUnknownFields); err != nil {
				// Other kinds in a kustomize build: skip them.
				var k struct{ Kind string }
				if yaml.Unmarshal(d, &k) == nil && k.Kind != "PrometheusRule" && k.Kind != "" {
					continue
				}
				fmt.Printf("%s: %v\n", f, err)
				bad++
				continue
			}
			if x.Kind != "" && x.Kind != "PrometheusRule" {
				continue
			}
			for _, g := range append(x.Groups, x.Spec.Groups...) {
				for _, r := range g.Rules {
					n++
					for _, err := range check(r) {
						fmt.Printf("%s: group %s: rule %s%s: %v\n", f, g.Name, r.Alert, r.Record, err)
						bad++
					}
				}
			}
		}
	}
	fmt.Printf("%d rules checked, %d problems\n", n, bad)
	if bad > 0 || n == 0 {
		os.Exit(1)
	}
}

// promql is the parser with Prometheus's default options, as promtool uses.
var promql = parser.NewParser(parser.Options{})

func check(r rule) []error {
	var errs []error
	if (r.Alert == "") == (r.Record == "") {
		errs = append(errs, errors.New("exactly one of alert and record is required"))
	}
	if r.Record != "" && !model.IsValidMetricName(model.LabelValue(r.Record)) {
		errs = append(errs, fmt.Errorf("invalid record name %q", r.Record))
	}
	expr, err := promql.ParseExpr(r.Expr)
	if err != nil {
		errs = append(errs, fmt.Errorf("expr: %w", err))
	} else {
		if r.Alert != "" && expr.Type() != parser.ValueTypeVector && expr.Type() != parser.ValueTypeScalar {
			errs = append(errs, fmt.Errorf("expr type %s, want vector", expr.Type()))
		}
		// The metric names used, for the caller to check against what the
		// exporter exports.
		parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
			if vs, ok := n.(*parser.VectorSelector); ok && vs.Name != "" {
				fmt.Printf("metric: %s\n", vs.Name)
			}
			return nil
		})
	}
	if r.For != "" {
		if _, err := model.ParseDuration(r.For); err != nil {
			errs = append(errs, fmt.Errorf("for: %w", err))
		}
	}
	for k, v := range r.Labels {
		if !model.LabelName(k).IsValid() || strings.TrimSpace(v) == "" {
			errs = append(errs, fmt.Errorf("label %q=%q invalid", k, v))
		}
	}
	for k := range r.Annotations {
		if !model.LabelName(k).IsValid() {
			errs = append(errs, fmt.Errorf("annotation name %q invalid", k))
		}
	}
	return errs
}

// splitYAML splits a multi-document YAML stream.
func splitYAML(b []byte) [][]byte {
	var out [][]byte
	for _, d := range bytes.Split(append([]byte("\n"), b...), []byte("\n---")) {
		if len(bytes.TrimSpace(d)) > 0 {
			out = append(out, d)
		}
	}
	return out
}

// Package monitoring is the subset of prometheus-operator's
// monitoring.coreos.com/v1 types that k3scert's manifests use, for strict
// decoding in tests without importing the operator's module. A field the
// manifests use but this subset lacks is a decode error: add it here from
// the operator's API reference
// (https://prometheus-operator.dev/docs/api-reference/api/).
package monitoring

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// GroupVersion of the operator's API.
const GroupVersion = "monitoring.coreos.com/v1"

// ServiceMonitor selects Services whose endpoints Prometheus scrapes.
type ServiceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              ServiceMonitorSpec `json:"spec"`
}

// ServiceMonitorSpec is the used part of the spec.
type ServiceMonitorSpec struct {
	JobLabel          string               `json:"jobLabel,omitempty"`
	Selector          metav1.LabelSelector `json:"selector"`
	NamespaceSelector struct {
		Any        bool     `json:"any,omitempty"`
		MatchNames []string `json:"matchNames,omitempty"`
	} `json:"namespaceSelector"`
	Endpoints []Endpoint `json:"endpoints"`
}

// Endpoint is one scrape endpoint.
type Endpoint struct {
	Port          string          `json:"port,omitempty"`
	Path          string          `json:"path,omitempty"`
	Scheme        string          `json:"scheme,omitempty"`
	Interval      string          `json:"interval,omitempty"`
	ScrapeTimeout string          `json:"scrapeTimeout,omitempty"`
	Relabelings   []RelabelConfig `json:"relabelings,omitempty"`
}

// RelabelConfig is a Prometheus relabelling rule.
type RelabelConfig struct {
	Action       string   `json:"action,omitempty"`
	SourceLabels []string `json:"sourceLabels,omitempty"`
	TargetLabel  string   `json:"targetLabel,omitempty"`
	Regex        string   `json:"regex,omitempty"`
	Replacement  *string  `json:"replacement,omitempty"`
}

// PrometheusRule holds alerting and recording rules.
type PrometheusRule struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Groups []RuleGroup `json:"groups"`
	} `json:"spec"`
}

// RuleGroup is a named group of rules.
type RuleGroup struct {
	Name     string `json:"name"`
	Interval string `json:"interval,omitempty"`
	Rules    []Rule `json:"rules"`
}

// Rule is an alerting (Alert) or recording (Record) rule.
type Rule struct {
	Alert       string            `json:"alert,omitempty"`
	Record      string            `json:"record,omitempty"`
	Expr        string            `json:"expr"`
	For         string            `json:"for,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Decode strictly decodes a document of one of the kinds above.
func Decode(kind string, doc []byte) (any, error) {
	var v any
	switch kind {
	case "ServiceMonitor":
		v = &ServiceMonitor{}
	case "PrometheusRule":
		v = &PrometheusRule{}
	default:
		return nil, fmt.Errorf("kind %s of %s is not in the local subset", kind, GroupVersion)
	}
	if err := yaml.UnmarshalStrict(doc, v); err != nil {
		return nil, err
	}
	return v, nil
}

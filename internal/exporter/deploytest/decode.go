package deploytest

import (
	"bytes"
	"fmt"
	"strings"

	monv1 "github.com/k3scert/k3scert/internal/exporter/deploytest/monitoring"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

// Object is one decoded manifest: a typed built-in object, or a typed
// prometheus-operator object.
type Object struct {
	Kind, Namespace, ObjName string
	APIVersion               string
	// Raw is the object's YAML document.
	Raw []byte
	// Typed is the object (*appsv1.DaemonSet, *monitoring.PrometheusRule, …).
	Typed any
}

// Name is the object as `kubectl -o name` spells it: kind.group/name for
// other API groups than core, kind/name for core ones.
func (o Object) Name() string {
	k := strings.ToLower(o.Kind)
	switch o.Kind {
	case "DaemonSet":
		k += ".apps"
	case "Role", "RoleBinding":
		k += ".rbac.authorization.k8s.io"
	case "ServiceMonitor", "PrometheusRule":
		k += ".monitoring.coreos.com"
	}
	return k + "/" + o.ObjName
}

var strict = json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme.Scheme, scheme.Scheme,
	json.SerializerOptions{Yaml: true, Strict: true})

// Decode splits a multi-document YAML stream and decodes every document
// strictly (unknown or duplicate fields are errors): built-in kinds with
// client-go's scheme, ServiceMonitor and PrometheusRule with the local
// monitoring.coreos.com/v1 subset.
func Decode(stream []byte) ([]Object, error) {
	var out []Object
	for i, doc := range bytes.Split(append([]byte("\n"), stream...), []byte("\n---")) {
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		var tm struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if tm.APIVersion == "" && tm.Kind == "" {
			continue // a document of comments only
		}
		o := Object{Kind: tm.Kind, Namespace: tm.Metadata.Namespace, ObjName: tm.Metadata.Name, APIVersion: tm.APIVersion, Raw: doc}
		switch tm.APIVersion {
		case monv1.GroupVersion:
			var err error
			o.Typed, err = monv1.Decode(tm.Kind, doc)
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", tm.Kind, tm.Metadata.Name, err)
			}
		default:
			obj, gvk, err := strict.Decode(doc, nil, nil)
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", tm.Kind, tm.Metadata.Name, err)
			}
			if gvk.Kind != tm.Kind {
				return nil, fmt.Errorf("%s %s decoded as %s", tm.Kind, tm.Metadata.Name, gvk.Kind)
			}
			scheme.Scheme.Default(obj) // as the apiserver does before validating
			o.Typed = obj
		}
		out = append(out, o)
	}
	return out, nil
}

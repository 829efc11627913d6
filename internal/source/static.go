package source

import (
	"encoding/json"

	"github.com/k3scert/k3scert/internal/k3s"
)

// ListenerIsStatic reports whether the listener secret stored in
// dynamic-cert.json carries listener.cattle.io/static: "true", i.e. a
// user-provided certificate that dynamiclistener never changes
// (dynamiclistener factory/gen.go IsStatic). A missing or unreadable file
// is not static; ReadAll reports it through DynamicCertJSON.
func ListenerIsStatic(path string) bool {
	b, err := readLimited(path)
	if err != nil || len(b) == 0 {
		return false
	}
	var s struct {
		Metadata struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"metadata"`
	}
	if json.Unmarshal(b, &s) != nil {
		return false
	}
	return s.Metadata.Annotations[k3s.ListenerStaticAnnotation] == "true"
}

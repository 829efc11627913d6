package kube

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Reader modes: which credentials a SecretReader uses. Values are API
// (they appear in logs and in the k3scert_identity_info metric).
const (
	// ModeServiceAccount is the pod's ServiceAccount: the token and CA
	// under /var/run/secrets/kubernetes.io/serviceaccount and
	// KUBERNETES_SERVICE_HOST/PORT (rest.InClusterConfig).
	ModeServiceAccount = "serviceaccount"
	// ModeKubeconfig is a kubeconfig file the operator gave.
	ModeKubeconfig = "kubeconfig"
)

// SecretReader reads one Secret with credentials it was given — a pod's
// ServiceAccount or a kubeconfig — and nothing else. Unlike Connect it
// never mints a certificate and never reads a CA key: what it may read is
// what the API server's RBAC grants those credentials (the exporter's Role
// allows get/watch on the one listener secret).
//
// It talks plain REST (client-go's rest transport: TLS, bearer token file
// rotation, client certificates, exec plugins) and decodes core/v1 JSON; it
// does not build a typed clientset.
type SecretReader struct {
	Mode string
	Host string // the API server URL
	cfg  *rest.Config
	hc   *http.Client
}

// InCluster is a SecretReader for the pod's ServiceAccount. It fails
// (rest.ErrNotInCluster) outside a pod.
func InCluster(timeout time.Duration) (*SecretReader, error) {
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return nil, err
	}
	return newReader(ModeServiceAccount, cfg, timeout)
}

// InPod reports whether the process runs in a pod with a mounted
// ServiceAccount token: the environment rest.InClusterConfig needs.
func InPod() bool {
	if os.Getenv("KUBERNETES_SERVICE_HOST") == "" || os.Getenv("KUBERNETES_SERVICE_PORT") == "" {
		return false
	}
	_, err := os.Stat("/var/run/secrets/kubernetes.io/serviceaccount/token")
	return err == nil
}

// FromKubeconfig is a SecretReader for the current context of a
// kubeconfig file.
func FromKubeconfig(path string, timeout time.Duration) (*SecretReader, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	return newReader(ModeKubeconfig, cfg, timeout)
}

// FromConfig is a SecretReader for a rest.Config (tests, callers with
// their own credentials).
func FromConfig(mode string, cfg *rest.Config, timeout time.Duration) (*SecretReader, error) {
	return newReader(mode, rest.CopyConfig(cfg), timeout)
}

func newReader(mode string, cfg *rest.Config, timeout time.Duration) (*SecretReader, error) {
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	cfg.Timeout = timeout
	if cfg.UserAgent == "" {
		cfg.UserAgent = "k3scert"
	}
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, err
	}
	return &SecretReader{Mode: mode, Host: cfg.Host, cfg: cfg, hc: hc}, nil
}

// Close drops idle connections.
func (r *SecretReader) Close() { r.hc.CloseIdleConnections() }

// Via describes the reader for reports: "api as system:serviceaccount:…
// (serviceaccount)".
func (r *SecretReader) Via(user string) string {
	if user == "" {
		return "api (" + r.Mode + ")"
	}
	return "api as " + user + " (" + r.Mode + ")"
}

// Get reads namespace/name. A missing secret is nil, nil; a denied one is
// an error that says so.
func (r *SecretReader) Get(ctx context.Context, namespace, name string) (*corev1.Secret, error) {
	u := r.Host + "/api/v1/namespaces/" + url.PathEscape(namespace) + "/secrets/" + url.PathEscape(name)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	b, code, err := r.do(req)
	if err != nil {
		return nil, fmt.Errorf("get secret %s/%s: %w", namespace, name, err)
	}
	switch code {
	case http.StatusOK:
	case http.StatusNotFound:
		return nil, nil
	default:
		return nil, fmt.Errorf("get secret %s/%s as %s credentials: %s", namespace, name, r.Mode, status(code, b))
	}
	var s corev1.Secret
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("get secret %s/%s: decode: %w", namespace, name, err)
	}
	return &s, nil
}

// WhoAmI asks the API server who these credentials are (a
// SelfSubjectReview, which every authenticated user may create).
func (r *SecretReader) WhoAmI(ctx context.Context) (string, error) {
	body, _ := json.Marshal(authnv1.SelfSubjectReview{})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.Host+"/apis/authentication.k8s.io/v1/selfsubjectreviews", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	b, code, err := r.do(req)
	if err != nil {
		return "", err
	}
	if code != http.StatusCreated && code != http.StatusOK {
		return "", fmt.Errorf("selfsubjectreview: %s", status(code, b))
	}
	var rev authnv1.SelfSubjectReview
	if err := json.Unmarshal(b, &rev); err != nil {
		return "", err
	}
	if rev.Status.UserInfo.Username == "" {
		return "", errors.New("selfsubjectreview: no user name")
	}
	return rev.Status.UserInfo.Username, nil
}

func (r *SecretReader) do(req *http.Request) ([]byte, int, error) {
	resp, err := r.hc.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, 0, err
	}
	return b, resp.StatusCode, nil
}

// status summarises an API error response (a metav1.Status) without its
// body otherwise.
func status(code int, b []byte) string {
	var st struct {
		Message string `json:"message"`
		Reason  string `json:"reason"`
	}
	if json.Unmarshal(b, &st) == nil && st.Message != "" {
		return fmt.Sprintf("%d %s: %s", code, st.Reason, st.Message)
	}
	return fmt.Sprintf("%d %s", code, http.StatusText(code))
}

package supervisorkit

// The agent endpoints of the K3s supervisor: what a K3s agent fetches from a
// server on every start (facts §1.3, §6.2; audit §4). Upstream references,
// k3s-io/k3s:
//
//   - routes: pkg/server/handlers/router.go, prefix /v1-<program>:
//     GET client-ca.crt, server-ca.crt; serving-kubelet.crt,
//     client-kubelet.crt (node-authenticated), client-kube-proxy.crt,
//     client-<program>-controller.crt;
//   - signing: pkg/server/handlers/handlers.go@10e42d4 signAndSend/getCSR
//     (audit: @2a1e2e8:235-282): a POST whose body parses as a DER
//     x509.CertificateRequest is signed for the CSR's public key and answered
//     with the leaf followed by the CA bundle (util.EncodeCertsPEM); any
//     other request (old agents: GET) is signed for the server's shared
//     legacy key (server/tls/<name>.key) and that key is appended;
//   - certificate fields: ServingKubeletCert (CN <node>, ServerAuth, DNS
//     <node> + localhost, IP 127.0.0.1 + the <program>-Node-IP header),
//     ClientKubeletCert (CN system:node:<node>, O system:nodes, ClientAuth),
//     ClientKubeProxyCert (CN system:kube-proxy), ClientControllerCert
//     (CN system:<program>-controller); validity: dynamiclistener's
//     cert.NewSignedCert, NotBefore = the CA's NotBefore, NotAfter = now +
//     365 days;
//   - authentication: the agent sends the token's credentials as HTTP basic
//     auth (pkg/clientaccess/token.go get: SetBasicAuth(username, password)
//     of the K10<ca-hash>::<user>:<password> token) and, for the node
//     certificates, the <program>-Node-Name and <program>-Node-Password
//     headers (pkg/agent/config/config.go getNodeNamedCrt).
//
// The lab differences: the node password is required but not compared with
// a stored one (K3s keeps it in the <node>.node-password.<program> secret),
// and an agent's existing client-kubelet certificate is not accepted in
// place of the token.

import (
	"crypto"
	"crypto/rand"
	"crypto/subtle"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// agentRoutes adds the /v1-<program>/ agent endpoints to mux. They exist
// only when the supervisor was given the token (--token-file) and the
// client CA key (--client-ca-key).
func agentRoutes(mux *http.ServeMux, c Config) error {
	if c.TokenFile == "" || c.ClientCAKey == "" {
		return nil
	}
	tok, err := os.ReadFile(c.TokenFile)
	if err != nil {
		return err
	}
	user, pass, err := tokenCreds(strings.TrimSpace(string(tok)))
	if err != nil {
		return fmt.Errorf("%s: %w", c.TokenFile, err)
	}
	p := c.Program
	if p == "" {
		p = "k3s"
	}
	prefix := "/v1-" + p + "/"
	auth := func(next func(w http.ResponseWriter, r *http.Request)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			u, pw, ok := r.BasicAuth()
			// K3s accepts the server token's and the agent token's users;
			// the lab has one token, used with the user "node" by agents.
			if !ok || (u != user && u != "node") || subtle.ConstantTimeCompare([]byte(pw), []byte(pass)) != 1 {
				http.Error(w, "Unauthorized", http.StatusUnauthorized)
				return
			}
			next(w, r)
		}
	}
	file := func(path string) http.HandlerFunc {
		return auth(func(w http.ResponseWriter, _ *http.Request) {
			b, err := os.ReadFile(path)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			w.Header().Set("Content-Type", "text/plain")
			_, _ = w.Write(b)
		})
	}
	mux.HandleFunc(prefix+"client-ca.crt", file(c.ClientCA))
	mux.HandleFunc(prefix+"server-ca.crt", file(c.CACert))
	keyDir := filepath.Dir(c.CACert)
	node := func(r *http.Request) (string, error) {
		name := r.Header.Get(p + "-Node-Name")
		if name == "" {
			return "", fmt.Errorf("node name not set")
		}
		if r.Header.Get(p+"-Node-Password") == "" {
			return "", fmt.Errorf("node password not set")
		}
		return strings.ToLower(name), nil
	}
	mux.HandleFunc(prefix+"serving-kubelet.crt", auth(func(w http.ResponseWriter, r *http.Request) {
		name, err := node(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		ips := []net.IP{net.ParseIP("127.0.0.1")}
		if v := r.Header.Get(p + "-Node-IP"); v != "" {
			for _, s := range strings.Split(v, ",") {
				ip := net.ParseIP(s)
				if ip == nil {
					http.Error(w, "invalid node IP address "+s, http.StatusBadRequest)
					return
				}
				ips = append(ips, ip)
			}
		}
		signAndSend(w, r, c.CACert, c.CAKey, filepath.Join(keyDir, "serving-kubelet.key"), &x509.Certificate{
			Subject: pkix.Name{CommonName: name}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			DNSNames: []string{name, "localhost"}, IPAddresses: ips})
	}))
	mux.HandleFunc(prefix+"client-kubelet.crt", auth(func(w http.ResponseWriter, r *http.Request) {
		name, err := node(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		signAndSend(w, r, c.ClientCA, c.ClientCAKey, filepath.Join(keyDir, "client-kubelet.key"), &x509.Certificate{
			Subject: pkix.Name{CommonName: "system:node:" + name, Organization: []string{"system:nodes"}}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	}))
	mux.HandleFunc(prefix+"client-kube-proxy.crt", auth(func(w http.ResponseWriter, r *http.Request) {
		signAndSend(w, r, c.ClientCA, c.ClientCAKey, filepath.Join(keyDir, "client-kube-proxy.key"), &x509.Certificate{
			Subject: pkix.Name{CommonName: "system:kube-proxy"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	}))
	mux.HandleFunc(prefix+"client-"+p+"-controller.crt", auth(func(w http.ResponseWriter, r *http.Request) {
		signAndSend(w, r, c.ClientCA, c.ClientCAKey, filepath.Join(keyDir, "client-"+p+"-controller.key"), &x509.Certificate{
			Subject: pkix.Name{CommonName: "system:" + p + "-controller"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	}))
	return nil
}

// tokenCreds returns the user and password of a K3s token:
// K10<ca-hash>::<user>:<password>, <user>:<password> or a bare password
// (pkg/clientaccess/token.go parseToken; a bare password's user is empty).
func tokenCreds(tok string) (string, string, error) {
	if strings.HasPrefix(tok, "K10") {
		parts := strings.SplitN(tok[3:], "::", 2)
		if len(parts) != 2 {
			return "", "", fmt.Errorf("invalid token format")
		}
		tok = parts[1]
	}
	if u, p, ok := strings.Cut(tok, ":"); ok && p != "" {
		return u, p, nil
	}
	if tok == "" {
		return "", "", fmt.Errorf("empty token")
	}
	return "server", tok, nil
}

func signAndSend(w http.ResponseWriter, r *http.Request, caFile, caKeyFile, legacyKeyFile string, tmpl *x509.Certificate) {
	cas, err := readCerts(caFile)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	caKey, err := readKey(caKeyFile)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	var pub crypto.PublicKey
	var keyPEM []byte
	if csr, err := getCSR(r); err == nil {
		pub = csr.PublicKey
	} else {
		keyPEM, err = os.ReadFile(legacyKeyFile)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		k, err := parseKeyPEM(keyPEM)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		pub = k.Public()
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 63))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = cas[0].NotBefore
	tmpl.NotAfter = time.Now().Add(365 * 24 * time.Hour).UTC()
	tmpl.KeyUsage = x509.KeyUsageKeyEncipherment | x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, cas[0], pub, caKey)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	out := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	for _, c := range cas {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	_, _ = w.Write(append(out, keyPEM...))
}

// getCSR is handlers.go's getCSR: a POST body that parses as a DER
// certificate request.
func getCSR(r *http.Request) (*x509.CertificateRequest, error) {
	if r.Method != http.MethodPost {
		return nil, fmt.Errorf("not a POST")
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		return nil, err
	}
	csr, err := x509.ParseCertificateRequest(b)
	if err != nil {
		return nil, err
	}
	return csr, csr.CheckSignature()
}

func readKey(path string) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseKeyPEM(b)
}

func parseKeyPEM(b []byte) (crypto.Signer, error) {
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return nil, fmt.Errorf("no private key")
		}
		var k any
		var err error
		switch blk.Type {
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(blk.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, err
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("unsupported key type %T", k)
		}
		return s, nil
	}
}

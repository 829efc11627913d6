package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/k3scert/k3scert/internal/check"
	"github.com/k3scert/k3scert/internal/datastore"
	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/kube"
	"github.com/k3scert/k3scert/internal/source"
	corev1 "k8s.io/api/core/v1"
)

// secretGetter picks how check reads the listener secret (--secret):
// auto = the API when it answers, else the datastore; api; datastore; none.
func secretGetter(f *nodeFlags) source.SecretGetter {
	mode := f.secret
	if mode == "none" {
		return nil
	}
	return func(ctx context.Context) (*corev1.Secret, string, error) {
		n, ok, err := serverNode(f)
		if err != nil || !ok {
			return nil, "", err // agents have no access to the secret
		}
		l := k3s.ListenerSpec(n.Program)
		now := time.Now() // the real time: minting and TLS, never --at
		switch mode {
		case "api":
			return secretFromAPI(ctx, n, l, now, f.timeout)
		case "datastore":
			return secretFromDatastore(ctx, n, l, f.timeout)
		case "auto", "":
			s, via, err := secretFromAPI(ctx, n, l, now, f.timeout)
			if err == nil {
				return s, via, nil
			}
			if errors.Is(err, source.ErrNotRegular) || errors.Is(err, source.ErrTooLarge) {
				// A node file that is a FIFO or huge is a finding, not
				// a reason to try the datastore next.
				return nil, "", fmt.Errorf("not reading the secret: %w", err)
			}
			s, via, derr := secretFromDatastore(ctx, n, l, f.timeout)
			if derr != nil {
				return nil, "", fmt.Errorf("API: %v; datastore: %w", err, derr)
			}
			return s, via, nil
		}
		return nil, "", fmt.Errorf("--secret must be auto, api, datastore or none, not %q", mode)
	}
}

func secretFromAPI(ctx context.Context, n check.Node, l k3s.Listener, now time.Time, timeout time.Duration) (*corev1.Secret, string, error) {
	o, err := kube.NodeOptions(n.DataDir, n.Program, n.Ports, now, timeout)
	if err != nil {
		return nil, "", err
	}
	c, err := kube.Connect(ctx, o)
	if err != nil {
		return nil, "", err
	}
	s, err := c.GetServingSecret(ctx, l.Namespace, l.SecretName)
	if err != nil {
		return nil, "", err
	}
	return s, c.Via(), nil
}

func secretFromDatastore(ctx context.Context, n check.Node, l k3s.Listener, timeout time.Duration) (*corev1.Secret, string, error) {
	sec, err := datastore.OpenNode(datastore.NodeOptions{DataDir: n.DataDir, Program: n.Program, Timeout: timeout})
	if err != nil {
		return nil, "", err
	}
	defer sec.Store.Close()
	via := "datastore " + sec.Store.Kind()
	s, info, err := sec.Get(ctx, l.SecretKey())
	if errors.Is(err, datastore.ErrNotFound) {
		return nil, via, nil
	}
	if err != nil {
		return nil, "", err
	}
	if info.Encrypted != nil {
		via += " (decrypted " + info.Encrypted.Provider + ":" + info.Encrypted.KeyName + ")"
	}
	return s, via, nil
}

// serverNode resolves the node the flags name for reading its listener
// secret; ok is false on an agent, which has no access to the secret.
func serverNode(f *nodeFlags) (n check.Node, ok bool, err error) {
	o := check.Options{DataDir: f.dataDir, Program: k3s.Program(f.program), Profile: f.profile, Version: f.version}
	if p := f.ports(); p != nil {
		o.Ports = p
	}
	if n, err = check.Resolve(o); err != nil {
		return n, false, err
	}
	return n, n.Role == k3s.RoleServer, nil
}

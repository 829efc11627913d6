//go:build tools

// Package deps pins modules that parts of k3scert under construction use, so
// that `go mod tidy` keeps them. It is never built.
package deps

import (
	_ "github.com/fsnotify/fsnotify"
	_ "github.com/google/renameio/v2"
	_ "github.com/k3s-io/kine/pkg/endpoint"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/rancher/dynamiclistener"
	_ "github.com/rancher/dynamiclistener/storage/kubernetes"
	_ "github.com/rancher/wrangler/v3/pkg/generated/controllers/core"
	_ "github.com/rogpeppe/go-internal/testscript"
	_ "go.etcd.io/etcd/client/v3"
	_ "go.etcd.io/etcd/server/v3/embed"
	_ "k8s.io/apiserver/pkg/storage/value/encrypt/aes"
	_ "k8s.io/apiserver/pkg/storage/value/encrypt/secretbox"
	_ "k8s.io/client-go/kubernetes"
)

module github.com/k3scert/k3scert/tools/labbin/supervisorkit

go 1.24

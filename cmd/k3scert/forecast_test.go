package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/k3s/k3sgen"
	"github.com/k3scert/k3scert/internal/report"
)

// forecastNode writes the reference scenario 2 node: installed 2020-07-24.
func forecastNode(t *testing.T, p k3s.Profile) (dataDir, kubeconfig string) {
	t.Helper()
	dir := t.TempDir()
	dataDir, kubeconfig = filepath.Join(dir, "data"), filepath.Join(dir, "k3s.yaml")
	install := time.Date(2020, 7, 24, 7, 4, 4, 0, time.UTC)
	if _, err := k3sgen.Start(k3sgen.Options{DataDir: dataDir, Profile: p, Kubeconfig: kubeconfig, Listener: true}, install); err != nil {
		t.Fatal(err)
	}
	return dataDir, kubeconfig
}

// rootCLI runs the k3scert command tree in process and returns what it
// printed (stdout and stderr together).
func rootCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

// forecastSave keeps an output for people to look at when K3SCERT_TEST_OUT is set.
func forecastSave(t *testing.T, name, s string) {
	if dir := os.Getenv("K3SCERT_TEST_OUT"); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestForecastScenario2(t *testing.T) {
	tests := []struct {
		profile  k3s.Profile
		lockLine string // the headline
		absent   string
	}{
		{k3s.ProfileV118, "LOCK-OUT  2021-07-24 06:04 UTC", ""},
		{k3s.ProfileCurrent, "LOCK-OUT  2022-07-19 23:00 UTC", "LOCK-OUT  2021"},
	}
	for _, tt := range tests {
		t.Run(tt.profile.Name, func(t *testing.T) {
			dataDir, kc := forecastNode(t, tt.profile)
			args := []string{"forecast", "-d", dataDir, "--profile", tt.profile.Name, "--admin-kubeconfig", kc, "--no-endpoints", "--secret", "none",
				"--from", "2021-07-01", "--to", "2022-12-31", "--restart-at", "2021-07-20"}
			out, err := rootCLI(t, args...)
			if err != nil {
				t.Fatalf("forecast: %v\n%s", err, out)
			}
			forecastSave(t, "forecast-scenario2-"+tt.profile.Name+".txt", out)
			if !strings.Contains(out, tt.lockLine) {
				t.Errorf("text output lacks %q:\n%s", tt.lockLine, out)
			}
			if tt.absent != "" && strings.Contains(out, tt.absent) {
				t.Errorf("text output has %q:\n%s", tt.absent, out)
			}
			for _, want := range []string{"WHAT TO DO", "TIMELINE (UTC)", "RESTART", "ASSUMPTIONS"} {
				if !strings.Contains(out, want) {
					t.Errorf("text output lacks %q", want)
				}
			}

			js, err := rootCLI(t, append(args, "-o", "json")...)
			if err != nil {
				t.Fatalf("forecast -o json: %v", err)
			}
			forecastSave(t, "forecast-scenario2-"+tt.profile.Name+".json", js)
			var f report.Forecast
			if err := json.Unmarshal([]byte(js), &f); err != nil {
				t.Fatalf("json: %v\n%s", err, js)
			}
			if f.APIVersion != "k3scert/v1alpha1" || f.Kind != "Forecast" || f.LockOut == nil || len(f.Restarts) != 1 {
				t.Errorf("json: apiVersion %q kind %q lockOut %v restarts %v", f.APIVersion, f.Kind, f.LockOut, f.Restarts)
			}

			html, err := rootCLI(t, append(args, "-o", "html")...)
			if err != nil {
				t.Fatalf("forecast -o html: %v", err)
			}
			forecastSave(t, "forecast-scenario2-"+tt.profile.Name+".html", html)
			if n := strings.Count(html, `class="bar"`); n != len(f.Certificates) {
				t.Errorf("html has %d bars, want %d", n, len(f.Certificates))
			}
			// A node on another supervisor port (a lab node) is named by
			// its own port in the page, never by the default one.
			moved, err := rootCLI(t, append(args, "-o", "html", "--supervisor-port", "16443")...)
			if err != nil {
				t.Fatalf("forecast -o html --supervisor-port: %v", err)
			}
			if strings.Contains(html, ":6443") && (!strings.Contains(moved, ":16443") || strings.Contains(strings.ReplaceAll(moved, ":16443", ""), ":6443")) {
				t.Errorf("forecast -o html --supervisor-port 16443 still names :6443 (or not :16443)")
			}
		})
	}
}

func TestForecastFlags(t *testing.T) {
	dataDir, kc := forecastNode(t, k3s.ProfileV118)
	base := []string{"forecast", "-d", dataDir, "--admin-kubeconfig", kc, "--no-endpoints", "--secret", "none", "--from", "2021-07-01"}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--restart-at", "2020-01-01"}, "outside the forecast"},
		{[]string{"--to", "2021-01-01"}, "is not after --from"},
		{[]string{"--restart-at", "yesterday"}, "--restart-at"},
		{[]string{"-o", "xml"}, "unknown output format"},
	} {
		_, err := rootCLI(t, append(base, tt.args...)...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: error %v, want %q", tt.args, err, tt.want)
		}
	}
	// Offsets are from --from; the default --to is the latest CA expiry.
	js, err := rootCLI(t, append(base, "--restart-at", "+19d", "-o", "json")...)
	if err != nil {
		t.Fatal(err)
	}
	var f report.Forecast
	if err := json.Unmarshal([]byte(js), &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Restarts) != 1 || !f.Restarts[0].Equal(time.Date(2021, 7, 20, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("restarts %v, want 2021-07-20", f.Restarts)
	}
	if f.To.Year() != 2030 {
		t.Errorf("default --to %s, want the CA expiry in 2030", f.To)
	}
}

func TestCheckHTML(t *testing.T) {
	dataDir, kc := forecastNode(t, k3s.ProfileV118)
	out, err := rootCLI(t, "check", "-d", dataDir, "--admin-kubeconfig", kc, "--no-endpoints", "--secret", "none", "--at", "2021-07-20", "-o", "html")
	if err != nil {
		if _, ok := err.(exitError); !ok {
			t.Fatalf("check -o html: %v", err)
		}
	}
	if !strings.Contains(out, `<svg`) || !strings.Contains(out, `class="bar"`) || !strings.Contains(out, "k3scert check") {
		t.Errorf("check -o html is not the timeline page:\n%.400s", out)
	}
}

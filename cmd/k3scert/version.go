package main

import (
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
)

// Stamped at build time (Makefile, tools/image):
//
//	go build -ldflags "-X main.version=v0.2.0 -X main.commit=<sha> -X main.buildDate=<RFC3339>"
//
// Unstamped builds fall back to what the Go toolchain recorded
// (debug.ReadBuildInfo: the module version and the VCS revision and time).
var (
	version   string
	commit    string
	buildDate string
)

// buildInfo is what `k3scert version` prints and k3scert_build_info carries.
type buildInfo struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	GoVersion string `json:"goVersion"`
	BuildDate string `json:"buildDate"`
	Platform  string `json:"platform"`
}

func currentBuild() buildInfo {
	b := buildInfo{Version: version, Commit: commit, BuildDate: buildDate, GoVersion: runtime.Version(),
		Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if b.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			b.Version = bi.Main.Version
		}
		dirty := false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if b.Commit == "" {
					b.Commit = s.Value
				}
			case "vcs.time":
				if b.BuildDate == "" {
					b.BuildDate = s.Value // the commit's time: the closest to a build date an unstamped build has
				}
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if dirty && b.Commit != "" && commit == "" {
			b.Commit += "-dirty"
		}
	}
	for _, p := range []*string{&b.Version, &b.Commit, &b.BuildDate} {
		if *p == "" {
			*p = "unknown"
		}
	}
	return b
}

func (b buildInfo) String() string {
	return fmt.Sprintf("k3scert %s (commit %s, built %s, %s, %s)", b.Version, b.Commit, b.BuildDate, b.GoVersion, b.Platform)
}

// buildInfoCollector is k3scert_build_info: 1, with the build as labels.
func buildInfoCollector(b buildInfo, node string) prometheus.Collector {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "k3scert_build_info",
		Help: "The running k3scert build: version, commit, Go version and build date as labels; always 1.",
	}, []string{"node", "version", "commit", "goversion", "build_date"})
	g.WithLabelValues(node, b.Version, b.Commit, b.GoVersion, b.BuildDate).Set(1)
	return g
}

func init() { extraCommands = append(extraCommands, newVersionCmd) }

func newVersionCmd() *cobra.Command {
	var output string
	c := &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit, Go version and build date",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b := currentBuild()
			switch output {
			case "", "text":
				fmt.Fprintln(cmd.OutOrStdout(), b.String())
			case "json":
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(b)
			default:
				return fmt.Errorf("unknown output format %q (want text or json)", output)
			}
			return nil
		},
	}
	c.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return c
}

// setVersion gives the root command --version.
func setVersion(root *cobra.Command) {
	root.Version = currentBuild().Version
	root.SetVersionTemplate(currentBuild().String() + "\n")
}

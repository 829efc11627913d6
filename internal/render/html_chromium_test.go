package render_test

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/k3scert/k3scert/internal/forecast"
	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/render"
	"github.com/k3scert/k3scert/internal/report"
	"golang.org/x/net/html"
)

// chromium finds the headless browser: $K3SCERT_CHROMIUM, else Debian's
// chromium. Without one the test fails when K3SCERT_LAB_REQUIRED=1 (CI)
// and is skipped, loudly, otherwise.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("K3SCERT_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "chromium not found: the HTML page is NOT checked in a browser (install it with: apt-get install -y chromium, or set K3SCERT_CHROMIUM)"
	if os.Getenv("K3SCERT_LAB_REQUIRED") == "1" {
		t.Fatal(msg + "; K3SCERT_LAB_REQUIRED=1 makes this a failure")
	}
	t.Skip("SKIPPED: " + msg)
	return ""
}

// outDir is where screenshots go: $K3SCERT_TEST_OUT (kept) or a temp dir.
func outDir(t *testing.T) string {
	if d := os.Getenv("K3SCERT_TEST_OUT"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// runChromium runs headless Chromium on a local file, loopback only: no
// network, no first-run, no component updates, a throwaway profile.
func runChromium(t *testing.T, bin string, extra ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-extensions",
		"--disable-dev-shm-usage", "--hide-scrollbars", "--user-data-dir=" + t.TempDir(), "--window-size=1400,1000"}, extra...)
	cmd := exec.CommandContext(ctx, bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", bin, strings.Join(extra, " "), err, errb.String())
	}
	return out.Bytes()
}

// near reports whether a pixel is within tol of an sRGB colour.
func near(c [3]uint32, r, g, b uint32, tol uint32) bool {
	d := func(a, b uint32) uint32 {
		if a > b {
			return a - b
		}
		return b - a
	}
	return d(c[0], r) <= tol && d(c[1], g) <= tol && d(c[2], b) <= tol
}

func TestHTMLInChromium(t *testing.T) {
	if testing.Short() && os.Getenv("K3SCERT_LAB_REQUIRED") != "1" {
		t.Skip("SKIPPED in -short: the HTML page is NOT checked in headless Chromium")
	}
	bin := chromium(t)
	dir := outDir(t)
	pages := []struct {
		name  string
		page  func(t *testing.T) ([]byte, report.Forecast)
		green bool // valid leaves must be visible
		red   bool // a lock-out or expired part must be visible
	}{
		{"forecast-scenario2-v1.18", func(t *testing.T) ([]byte, report.Forecast) {
			_, f := scenario2(t, k3s.ProfileV118)
			var b bytes.Buffer
			if err := render.Forecast(&b, f, "html", render.Options{}); err != nil {
				t.Fatal(err)
			}
			return b.Bytes(), f
		}, true, true},
		{"forecast-scenario2-current", func(t *testing.T) ([]byte, report.Forecast) {
			_, f := scenario2(t, k3s.ProfileCurrent)
			var b bytes.Buffer
			if err := render.Forecast(&b, f, "html", render.Options{}); err != nil {
				t.Fatal(err)
			}
			return b.Bytes(), f
		}, true, true},
		{"check-scenario2-v1.18", func(t *testing.T) ([]byte, report.Forecast) {
			r, _ := scenario2(t, k3s.ProfileV118)
			var b bytes.Buffer
			if err := render.Report(&b, r, "html", render.Options{}); err != nil {
				t.Fatal(err)
			}
			return b.Bytes(), forecast.ForReport(r)
		}, false, true},
	}
	for _, p := range pages {
		t.Run(p.name, func(t *testing.T) {
			page, f := p.page(t)
			file := filepath.Join(dir, p.name+".html")
			if err := os.WriteFile(file, page, 0o644); err != nil {
				t.Fatal(err)
			}
			url := "file://" + file

			// The DOM Chromium built has one bar per certificate.
			dom := runChromium(t, bin, "--dump-dom", url)
			doc, err := html.Parse(bytes.NewReader(dom))
			if err != nil {
				t.Fatalf("dumped DOM does not parse: %v", err)
			}
			if n := len(elems(doc, "bar")); n != len(f.Certificates) || n == 0 {
				t.Errorf("Chromium's DOM has %d bars, want %d (one per certificate)", n, len(f.Certificates))
			}
			if len(elems(doc, "timeline")) != 1 {
				t.Error("Chromium's DOM has no timeline")
			}

			// The screenshot shows the timeline: green bars, amber windows,
			// red lock-out or expiry.
			shot := filepath.Join(dir, p.name+".png")
			_ = os.Remove(shot)
			runChromium(t, bin, "--screenshot="+shot, url)
			fh, err := os.Open(shot)
			if err != nil {
				t.Fatalf("no screenshot: %v", err)
			}
			defer fh.Close()
			img, err := png.Decode(fh)
			if err != nil {
				t.Fatalf("screenshot: %v", err)
			}
			if b := img.Bounds(); b.Dx() < 1000 || b.Dy() < 700 {
				t.Errorf("screenshot is %v", b)
			}
			green, amber, blue, red := count(img)
			t.Logf("screenshot %s: %d green, %d amber, %d blue, %d red pixels", shot, green, amber, blue, red)
			if green+amber+blue+red < 20000 {
				t.Errorf("only %d bar-coloured pixels: the timeline did not render", green+amber+blue+red)
			}
			if p.green && green < 2000 {
				t.Errorf("only %d green (valid) pixels", green)
			}
			if amber < 200 {
				t.Errorf("only %d amber (renew window) pixels", amber)
			}
			if blue < 2000 {
				t.Errorf("only %d blue (CA) pixels", blue)
			}
			if p.red && red < 200 {
				t.Errorf("only %d red (expired / lock-out) pixels", red)
			}
			// The check page looks 13 months ahead, so the lock-out 23 days
			// out covers most of the chart, not a sliver of a 10-year axis.
			if strings.HasPrefix(p.name, "check-") && red < 100000 {
				t.Errorf("check page: only %d red pixels; the near-term lock-out is not prominent", red)
			}
		})
	}
}

func count(img image.Image) (green, amber, blue, red int) {
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			c := [3]uint32{r >> 8, g >> 8, bl >> 8}
			switch {
			case near(c, 0x2e, 0x7d, 0x4f, 20):
				green++
			case near(c, 0xe0, 0xa0, 0x30, 20):
				amber++
			case near(c, 0x4a, 0x6f, 0xa5, 20):
				blue++
			case near(c, 0xc0, 0x39, 0x2b, 30), near(c, 0xf5, 0xc6, 0xbf, 12):
				red++
			}
		}
	}
	return green, amber, blue, red
}

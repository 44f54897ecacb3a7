package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// machine describes where a report was measured.
type machine struct {
	CPU      string
	Cores    int
	Kernel   string
	Go       string
	Versions map[string]string // tool → first line of its version
	Load     string            // /proc/loadavg at the start
}

func describeMachine(l *lab) machine {
	m := machine{Cores: runtime.NumCPU(), Go: runtime.Version(), Versions: map[string]string{}}
	if out, err := exec.Command("lscpu").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "Model name" {
				m.CPU = strings.TrimSpace(v)
			}
		}
	}
	if out, err := exec.Command("uname", "-sr").Output(); err == nil {
		m.Kernel = strings.TrimSpace(string(out))
	}
	b, _ := os.ReadFile("/proc/loadavg")
	m.Load = strings.TrimSpace(string(b))
	m.Versions["sluice"] = version(filepath.Join(l.bin, "sluice"), "version")
	m.Versions["wrk"] = version("wrk", "-v")
	m.Versions["nginx"] = version("nginx", "-v")
	m.Versions["haproxy"] = version("haproxy", "-v")
	m.Versions["caddy"] = version("caddy", "version")
	return m
}

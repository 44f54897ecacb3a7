package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat:
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// procStat is what /proc/PID/stat says about one process.
type procStat struct {
	ppid int
	cpu  float64 // utime + stime, seconds
}

// readStat parses /proc/PID/stat. The command name may hold spaces and
// parentheses, so fields are counted after the last ')'.
func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	return parseStat(b)
}

func parseStat(b []byte) (procStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("stat %q: no ')'", b)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
	if len(f) < 13 {
		return procStat{}, fmt.Errorf("stat %q: %d fields after the name, want at least 13", b, len(f))
	}
	ppid, err1 := strconv.Atoi(f[1])
	ut, err2 := strconv.ParseUint(f[11], 10, 64)
	st, err3 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return procStat{}, fmt.Errorf("stat %q: bad ppid, utime or stime", b)
	}
	return procStat{ppid: ppid, cpu: float64(ut+st) / clockTicks}, nil
}

// statusKB returns a "kB" field of /proc/PID/status (VmHWM, VmRSS).
func statusKB(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != field {
			continue
		}
		v, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/status: %s: %w", pid, field, err)
		}
		return v, nil
	}
	return 0, fmt.Errorf("/proc/%d/status: no %s", pid, field)
}

// tree returns pid and its descendants (the gateway's plugin processes,
// for example), by scanning /proc.
func tree(pid int) []int {
	children := map[int][]int{}
	paths, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range paths {
		id, err := strconv.Atoi(filepath.Base(p))
		if err != nil {
			continue
		}
		if st, err := readStat(id); err == nil {
			children[st.ppid] = append(children[st.ppid], id)
		}
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// usage is the CPU time and memory of a process tree.
type usage struct {
	CPU   float64 // seconds, utime + stime, summed over the tree
	HWMKB int64   // VmHWM (peak RSS), summed over the tree
	RSSKB int64   // VmRSS, summed over the tree
}

// measure reads the usage of pid and its descendants. Processes that exit
// while it reads are skipped.
func measure(pid int) (usage, error) {
	var u usage
	for i, p := range tree(pid) {
		st, err := readStat(p)
		if err != nil {
			if i == 0 {
				return u, fmt.Errorf("process %d: %w", pid, err)
			}
			continue
		}
		u.CPU += st.cpu
		hwm, _ := statusKB(p, "VmHWM")
		rss, _ := statusKB(p, "VmRSS")
		u.HWMKB += hwm
		u.RSSKB += rss
	}
	return u, nil
}

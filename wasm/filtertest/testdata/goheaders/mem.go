package main

import "github.com/sluicegw/sluice/sdk"

// memoryPages returns the guest's linear memory size in 64 KiB pages
// (memory.size, mem_wasm.s).
func memoryPages() uint32

var reported uint32

// reportMemory keeps the metric "memory_pages" equal to the linear memory
// size: a host call only when memory grew, so the benchmark can read the
// guest's memory without an export of its own.
func reportMemory() {
	if p := memoryPages(); p != reported {
		_ = sdk.MetricAdd("memory_pages", int64(p)-int64(reported))
		reported = p
	}
}

package upstream

import (
	"fmt"
	"testing"

	"github.com/sluicegw/sluice/core/internal/model"
)

// BenchmarkPick measures Pick+Done per policy, from one goroutine and from
// GOMAXPROCS goroutines sharing one pool.
func BenchmarkPick(b *testing.B) {
	for _, policy := range []model.Balancer{model.BalancerRoundRobin, model.BalancerLeastRequest} {
		for _, n := range []int{3, 100} {
			addrs := make([]string, n)
			for i := range addrs {
				addrs[i] = fmt.Sprintf("10.0.0.%d:80", i)
			}
			s := NewSet(Options{})
			p := s.Sync(&model.Snapshot{DefaultBackend: &model.Backend{Name: "b", Balancer: policy, Endpoints: addrs}})["b"]
			b.Run(fmt.Sprintf("%s/%d", policy, n), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					p.Pick(nil).Done()
				}
			})
			b.Run(fmt.Sprintf("%s/%d/parallel", policy, n), func(b *testing.B) {
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						p.Pick(nil).Done()
					}
				})
			})
		}
	}
}

package kube

import (
	"context"
	"fmt"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"
)

// BenchmarkSnapshot measures one delivery's read of the caches: 1000
// Ingresses, each with its Service, EndpointSlice and TLS Secret.
func BenchmarkSnapshot(b *testing.B) {
	const n = 1000
	s, err := New(Options{Client: fake.NewClientset()})
	if err != nil {
		b.Fatal(err)
	}
	idx := func() cache.Indexer {
		return cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	}
	l := &listers{ingresses: idx(), classes: idx(), services: idx(), slices: idx()}
	secrets := idx()
	l.secrets = indexerSecrets{secrets}
	l.classes.Add(class())
	for i := range n {
		name := fmt.Sprintf("app-%d", i)
		l.ingresses.Add(ingress("shop", name, name, name+"-tls"))
		l.services.Add(service("shop", name))
		l.slices.Add(endpointSlice("shop", name, name+"-1", fmt.Sprintf("10.0.%d.%d", i/250, i%250)))
		secrets.Add(secret("shop", name+"-tls"))
	}
	s.listers.Store(l)
	b.ReportAllocs()
	for b.Loop() {
		in := s.snapshot(context.Background(), nil)
		if len(in.Ingresses) != n || len(in.Secrets) != n {
			b.Fatal("short snapshot")
		}
	}
}

// BenchmarkIndex measures the reference index of 1000 Ingresses.
func BenchmarkIndex(b *testing.B) {
	ings := make([]*networkingv1.Ingress, 1000)
	for i := range ings {
		ings[i] = ingress("shop", fmt.Sprintf("app-%d", i), fmt.Sprintf("svc-%d", i), fmt.Sprintf("tls-%d", i))
	}
	b.ReportAllocs()
	for b.Loop() {
		if r := index(ings); len(r.services) != 1000 {
			b.Fatal("bad index")
		}
	}
}

// BenchmarkRelevant measures the filter every EndpointSlice event goes
// through before it wakes anything.
func BenchmarkRelevant(b *testing.B) {
	s, err := New(Options{Client: fake.NewClientset()})
	if err != nil {
		b.Fatal(err)
	}
	ings := make([]*networkingv1.Ingress, 1000)
	for i := range ings {
		ings[i] = ingress("shop", fmt.Sprintf("app-%d", i), fmt.Sprintf("svc-%d", i), "")
	}
	s.refs.Store(index(ings))
	hit, miss := endpointSlice("shop", "svc-10", "x", "10.0.0.1"), endpointSlice("shop", "other", "y", "10.0.0.2")
	b.ReportAllocs()
	for b.Loop() {
		if !s.sliceRelevant(hit) || s.sliceRelevant(miss) {
			b.Fatal("wrong relevance")
		}
	}
}

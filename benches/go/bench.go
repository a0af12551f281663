// The benches' cases written in Go, as Go teams write them: errgroup, a worker pool on a buffered
// channel, channel pipelines, context fan-out, x/time/rate. Built in GOPATH mode against the standard
// library and Debian's golang.org/x/sync and golang.org/x/time (no module proxy needed), and run by
// `cargo xtask bench --go`, which puts each figure beside the Rust ones.
//
// Output: one line per case, "<criterion group>\t<nanoseconds per item>", the median of several runs.
package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"sort"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"
)

const (
	groupTasks    = 200_000
	poolJobs      = 50_000
	pipelineItems = 50_000
	waiters       = 10_000
	limiterCalls  = 1_000
)

var sink int

func groupCase(limit int, yield bool) {
	var g errgroup.Group
	if limit > 0 {
		g.SetLimit(limit)
	}
	for i := 0; i < groupTasks; i++ {
		g.Go(func() error {
			if yield {
				runtime.Gosched()
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		panic(err)
	}
}

func poolCase(workers, queue int, yield bool) {
	jobs := make(chan func(), queue)
	var done sync.WaitGroup
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for job := range jobs {
				job()
			}
		}()
	}
	done.Add(poolJobs)
	for i := 0; i < poolJobs; i++ {
		jobs <- func() {
			if yield {
				runtime.Gosched()
			}
			done.Done()
		}
	}
	done.Wait()
	close(jobs)
	wg.Wait()
}

// poolResultsCase is poolCase with a result per job, as Go teams write a pool whose jobs return
// an error: each job gets a channel of one error, which the submitter does not read (as the Rust
// case detaches each handle).
func poolResultsCase(workers, queue int, yield bool) {
	type job struct {
		run    func() error
		result chan error
	}
	jobs := make(chan job, queue)
	var done sync.WaitGroup
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				j.result <- j.run()
			}
		}()
	}
	done.Add(poolJobs)
	for i := 0; i < poolJobs; i++ {
		jobs <- job{
			run: func() error {
				if yield {
					runtime.Gosched()
				}
				done.Done()
				return nil
			},
			result: make(chan error, 1),
		}
	}
	done.Wait()
	close(jobs)
	wg.Wait()
}

// stage runs `workers` goroutines from in to out, closing out when all are done.
func stage(in <-chan int, workers, buffer int) <-chan int {
	out := make(chan int, buffer)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range in {
				out <- n
			}
		}()
	}
	go func() {
		wg.Wait()
		close(out)
	}()
	return out
}

func pipelineCase(stages, workers int) {
	source := make(chan int, 16)
	go func() {
		for i := 0; i < pipelineItems; i++ {
			source <- i
		}
		close(source)
	}()
	var out <-chan int = source
	for s := 0; s < stages; s++ {
		out = stage(out, workers, 16)
	}
	count := 0
	for range out {
		count++
	}
	if count != pipelineItems {
		panic("lost items")
	}
}

// fanoutCase times only the cancel and the joins, as the Rust bench does.
func fanoutCase() time.Duration {
	ctx, cancel := context.WithCancel(context.Background())
	var parked, done sync.WaitGroup
	parked.Add(waiters)
	done.Add(waiters)
	for i := 0; i < waiters; i++ {
		go func() {
			parked.Done()
			<-ctx.Done()
			done.Done()
		}()
	}
	parked.Wait()
	start := time.Now()
	cancel()
	done.Wait()
	return time.Since(start)
}

func limiterCase() {
	limiter := rate.NewLimiter(rate.Limit(1e9), 1_000_000_000)
	for i := 0; i < limiterCalls; i++ {
		if !limiter.Allow() {
			panic("limited")
		}
	}
}

func withTimeoutCase() {
	for i := 0; i < limiterCalls; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if ctx.Err() != nil {
			panic("expired")
		}
		cancel()
	}
}

func median(runs int, items int, f func() time.Duration) float64 {
	f() // warm-up
	per := make([]float64, runs)
	for i := range per {
		per[i] = float64(f().Nanoseconds()) / float64(items)
	}
	sort.Float64s(per)
	return per[runs/2]
}

func timed(f func()) func() time.Duration {
	return func() time.Duration {
		start := time.Now()
		f()
		return time.Since(start)
	}
}

func main() {
	runs := 15
	if len(os.Args) > 1 && os.Args[1] == "--quick" {
		runs = 5
	}
	cases := []struct {
		name  string
		items int
		run   func() time.Duration
	}{
		{"group/limit_8", groupTasks, timed(func() { groupCase(8, false) })},
		{"group/limit_8_yield", groupTasks, timed(func() { groupCase(8, true) })},
		{"group/unlimited", groupTasks, timed(func() { groupCase(0, false) })},
		{"group/unlimited_yield", groupTasks, timed(func() { groupCase(0, true) })},
		{"pool/w8_q16", poolJobs, timed(func() { poolCase(8, 16, false) })},
		{"pool/w8_q16_yield", poolJobs, timed(func() { poolCase(8, 16, true) })},
		{"pool/w8_q16_results", poolJobs, timed(func() { poolResultsCase(8, 16, false) })},
		{"pool/w8_q16_yield_results", poolJobs, timed(func() { poolResultsCase(8, 16, true) })},
		{"pipeline/one_stage", pipelineItems, timed(func() { pipelineCase(1, 8) })},
		{"pipeline/three_stages", pipelineItems, timed(func() { pipelineCase(3, 4) })},
		{"cancel/fanout_10k", waiters, fanoutCase},
		{"cancel/with_timeout", limiterCalls, timed(withTimeoutCase)},
		{"ratelimit/try_acquire_unlimited", limiterCalls, timed(limiterCase)},
	}
	for _, c := range cases {
		fmt.Printf("%s\t%.1f\n", c.name, median(runs, c.items, c.run))
	}
	_ = sink
}

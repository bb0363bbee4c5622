// Package simload holds what the benchmark drivers share: running work on
// a fixed number of goroutines, and minting codes from the simulator.
package simload

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
)

// Parallel runs f(0..n-1) on c goroutines and returns the first error.
func Parallel(c, n int, f func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, c)
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					errs <- err
					next.Store(int64(n)) // stop the others
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// Mint asks the simulator's development interface (url: its /code) for a
// one-time code of the user, as wx.qy.login would give the mini program.
func Mint(client *http.Client, url, corp, userID string) (string, error) {
	body, _ := json.Marshal(map[string]string{"corp": corp, "userid": userID})
	resp, err := client.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Code == "" {
		return "", fmt.Errorf("%s for %s: HTTP %d %s %v", url, userID, resp.StatusCode, out.Message, err)
	}
	return out.Code, nil
}

// Virtual Kubelet's importable end-to-end suite (github.com/virtual-kubelet/virtual-kubelet/test/e2e),
// run unchanged against the connector's node. Only the flags and this wrapper are ours: the suite's
// tests and assertions are the module's, at the version go.mod pins. Built by build.sh into a cache
// outside the repo and run by test/e2e/vk-e2e.test.ts.
package vke2e

import (
	"flag"
	"testing"
	"time"

	vke2e "github.com/virtual-kubelet/virtual-kubelet/test/e2e"
)

var (
	kubeconfig   = flag.String("kubeconfig", "", "path to the kubeconfig of the cluster the node is in")
	namespace    = flag.String("namespace", "default", "namespace the suite creates its pods in")
	nodeName     = flag.String("node-name", "", "name of the node under test")
	watchTimeout = flag.Duration("watch-timeout", 2*time.Minute, "how long the suite waits for each condition")
)

func TestEndToEnd(t *testing.T) {
	if *nodeName == "" || *kubeconfig == "" {
		t.Fatal("-kubeconfig and -node-name are required")
	}
	vke2e.NewEndToEndTestSuite(vke2e.EndToEndTestSuiteConfig{
		Kubeconfig:   *kubeconfig,
		Namespace:    *namespace,
		NodeName:     *nodeName,
		WatchTimeout: *watchTimeout,
	}).Run(t)
}

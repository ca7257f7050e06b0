// Command etcd is etcd's own server, built from the pinned go.etcd.io/etcd/server
// module. Debian's etcd is too old for recent API servers (no watch progress notify).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}

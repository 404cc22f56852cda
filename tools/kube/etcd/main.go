// Command etcd is etcd's server, built from go.etcd.io/etcd/server/v3 at the version
// k8s.io/kubernetes itself pins (see ../go.mod), i.e. the etcd that Kubernetes tests
// against. Same program as server/main.go in the etcd repository.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}

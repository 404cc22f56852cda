// Command kubectl is the upstream kubectl, built from the same Kubernetes version as
// kube-apiserver (see ../build.sh), so benchmarks can compare syncer with
// `kubectl apply --server-side` of the same minor. Same program as cmd/kubectl upstream.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/component-base/logs"
	"k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubectl/pkg/cmd/util"
)

func main() {
	logs.GlogSetter(cmd.GetLogVerbosity(os.Args)) // nolint:errcheck
	command := cmd.NewDefaultKubectlCommand()
	if err := cli.RunNoErrOutput(command); err != nil {
		util.CheckErr(err)
	}
}

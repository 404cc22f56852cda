// Command openshift-check is test infrastructure for syncer: it holds the
// github.com/openshift/api module (the version go.mod pins) whose CustomResourceDefinitions
// the test control plane installs (config.openshift.io Network and Infrastructure,
// operator.openshift.io Network), and decodes objects strictly into its Go types.
//
// Usage: openshift-check decode < objects.json
//
//	stdin:  a JSON list of Kubernetes objects
//	stdout: one JSON line per object: {"ok": true} or {"ok": false, "error": "..."}
//
// It also holds WMCO's username encryption (wmcocrypt.go): openshift-check
// wmco-encrypt|wmco-decrypt KEYFILE.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"

	configv1 "github.com/openshift/api/config/v1"
	machinev1 "github.com/openshift/api/machine/v1"
	machinev1beta1 "github.com/openshift/api/machine/v1beta1"
	operatorv1 "github.com/openshift/api/operator/v1"
)

// strict decodes data into out, refusing unknown fields.
func strict(data []byte, out any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	return dec.Decode(out)
}

// providerSpecs are the providerSpec value types of the platforms Windows MachineSets
// run on (openshift/api machine/v1beta1 and machine/v1), by the value's kind.
var providerSpecs = map[string]func() any{
	"AWSMachineProviderConfig":     func() any { return &machinev1beta1.AWSMachineProviderConfig{} },
	"AzureMachineProviderSpec":     func() any { return &machinev1beta1.AzureMachineProviderSpec{} },
	"GCPMachineProviderSpec":       func() any { return &machinev1beta1.GCPMachineProviderSpec{} },
	"VSphereMachineProviderSpec":   func() any { return &machinev1beta1.VSphereMachineProviderSpec{} },
	"NutanixMachineProviderConfig": func() any { return &machinev1.NutanixMachineProviderConfig{} },
}

func decode(obj json.RawMessage) error {
	var meta struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := json.Unmarshal(obj, &meta); err != nil {
		return err
	}
	switch meta.APIVersion + "/" + meta.Kind {
	case "machine.openshift.io/v1beta1/MachineSet":
		var ms machinev1beta1.MachineSet
		if err := strict(obj, &ms); err != nil {
			return fmt.Errorf("MachineSet: %w", err)
		}
		value := ms.Spec.Template.Spec.ProviderSpec.Value
		if value == nil {
			return fmt.Errorf("MachineSet: spec.template.spec.providerSpec.value is empty")
		}
		var kind struct {
			Kind string `json:"kind"`
		}
		if err := json.Unmarshal(value.Raw, &kind); err != nil {
			return err
		}
		newSpec, ok := providerSpecs[kind.Kind]
		if !ok {
			return fmt.Errorf("providerSpec: unknown kind %q", kind.Kind)
		}
		if err := strict(value.Raw, newSpec()); err != nil {
			return fmt.Errorf("providerSpec %s: %w", kind.Kind, err)
		}
		return nil
	case "config.openshift.io/v1/Network":
		return strict(obj, &configv1.Network{})
	case "config.openshift.io/v1/Infrastructure":
		return strict(obj, &configv1.Infrastructure{})
	case "operator.openshift.io/v1/Network":
		return strict(obj, &operatorv1.Network{})
	}
	return fmt.Errorf("openshift-check: no type for %s %s", meta.APIVersion, meta.Kind)
}

func main() {
	if len(os.Args) == 3 && (os.Args[1] == "wmco-encrypt" || os.Args[1] == "wmco-decrypt") {
		os.Exit(wmcoCrypt(os.Args[1], os.Args[2]))
	}
	if len(os.Args) != 2 || os.Args[1] != "decode" {
		fmt.Fprintln(os.Stderr, "usage: openshift-check decode < objects.json | "+
			"openshift-check wmco-encrypt|wmco-decrypt KEYFILE < text")
		os.Exit(2)
	}
	var objects []json.RawMessage
	if err := json.NewDecoder(os.Stdin).Decode(&objects); err != nil {
		fmt.Fprintln(os.Stderr, "openshift-check:", err)
		os.Exit(2)
	}
	out := json.NewEncoder(os.Stdout)
	for _, obj := range objects {
		if err := decode(obj); err != nil {
			_ = out.Encode(map[string]any{"ok": false, "error": err.Error()})
		} else {
			_ = out.Encode(map[string]any{"ok": true})
		}
	}
}

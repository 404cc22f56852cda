// Command node-check judges a Windows service definition the way the real component
// would at start-up, with the component's own code from k8s.io/kubernetes (the version
// tools/kube/go.mod pins): the kubelet's and kube-proxy's flag sets, their config-file
// decoders (strict) and their validation; kube-log-runner's flags. It is test
// infrastructure for syncer's simulated Windows hosts (syncer_lab/winhost): a simulated
// kubelet or kube-proxy refuses to start, with this error text, when node-check
// rejects what syncer wrote. It is never part of the product.
//
// Input (stdin, JSON):
//
//	{"component": "kubelet" | "kube-proxy" | "kube-log-runner",
//	 "args": ["--config=C:\\k\\kubelet.conf", ...],
//	 "files": {"C:\\k\\kubelet.conf": "<content>", ...}}
//
// Files named by Windows paths in the arguments are written to a temporary directory
// and the arguments rewritten to point there. Output (stdout, JSON): {"ok": true,
// "config": <the effective configuration, versioned JSON>, "flags": {<flags given>},
// "args": [<kube-log-runner: the wrapped command>]} or {"ok": false, "error": "..."}.
//
// Windows-only flags and rules: the Linux build of these packages does not register the
// flags that exist only in their *_windows.go files, and validates the proxy mode
// against the Linux modes. The few Windows-only parts are listed once below
// (windowsKubeletFlags, windowsProxyFlags, windowsProxyDefaults, windowsProxyModes,
// windowsKubeletRules), each copied in meaning from the named file of the same version.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/validation/field"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	cliflag "k8s.io/component-base/cli/flag"
	"k8s.io/component-base/featuregate"
	logsapi "k8s.io/component-base/logs/api/v1"
	kubeproxyv1alpha1 "k8s.io/kube-proxy/config/v1alpha1"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	kubeproxyapp "k8s.io/kubernetes/cmd/kube-proxy/app"
	kubeletoptions "k8s.io/kubernetes/cmd/kubelet/app/options"
	_ "k8s.io/kubernetes/pkg/features" // registers the Kubernetes feature gates
	kubeletconfig "k8s.io/kubernetes/pkg/kubelet/apis/config"
	kubeletscheme "k8s.io/kubernetes/pkg/kubelet/apis/config/scheme"
	kubeletvalidation "k8s.io/kubernetes/pkg/kubelet/apis/config/validation"
	"k8s.io/kubernetes/pkg/kubelet/kubeletconfig/configfiles"
	proxyconfig "k8s.io/kubernetes/pkg/proxy/apis/config"
	proxyscheme "k8s.io/kubernetes/pkg/proxy/apis/config/scheme"
	proxyconfigv1alpha1 "k8s.io/kubernetes/pkg/proxy/apis/config/v1alpha1"
	proxyvalidation "k8s.io/kubernetes/pkg/proxy/apis/config/validation"
	utilfs "k8s.io/kubernetes/pkg/util/filesystem"
)

type request struct {
	Component string            `json:"component"`
	Args      []string          `json:"args"`
	Files     map[string]string `json:"files"`
}

type response struct {
	OK       bool              `json:"ok"`
	Error    string            `json:"error,omitempty"`
	Warnings []string          `json:"warnings,omitempty"`
	Config   json.RawMessage   `json:"config,omitempty"`
	Flags    map[string]string `json:"flags,omitempty"`
	Args     []string          `json:"args,omitempty"`
	Gates    map[string]bool   `json:"gates,omitempty"`
}

func main() {
	var req request
	if err := json.NewDecoder(os.Stdin).Decode(&req); err != nil {
		fail(fmt.Errorf("node-check: bad request: %w", err))
	}
	dir, err := os.MkdirTemp("", "node-check-")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(dir)
	files := newFileMap(dir)
	for winPath, content := range req.Files {
		if err := files.add(winPath, content); err != nil {
			fail(err)
		}
	}
	args := files.rewrite(req.Args)
	var resp response
	switch req.Component {
	case "kubelet":
		resp, err = checkKubelet(args, files)
	case "kube-proxy":
		resp, err = checkKubeProxy(args, files)
	case "kube-log-runner":
		resp, err = checkKubeLogRunner(req.Args)
	default:
		err = fmt.Errorf("node-check: unknown component %q", req.Component)
	}
	if err != nil {
		fail(err)
	}
	resp.OK = true
	emit(resp)
}

func fail(err error) {
	emit(response{OK: false, Error: err.Error()})
	os.Exit(0)
}

func emit(resp response) {
	out, _ := json.Marshal(resp)
	fmt.Println(string(out))
}

// --- Windows paths in arguments and config files ---------------------------------------

type fileMap struct {
	dir      string
	paths    map[string]string // lower-cased Windows path -> temporary path
	original map[string]string // lower-cased Windows path -> as given
}

func newFileMap(dir string) *fileMap {
	return &fileMap{dir: dir, paths: map[string]string{}, original: map[string]string{}}
}

func (f *fileMap) add(winPath, content string) error {
	name := filepath.Join(f.dir, fmt.Sprintf("f%d-%s", len(f.paths), filepath.Base(strings.ReplaceAll(winPath, "\\", "/"))))
	if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
		return err
	}
	f.paths[strings.ToLower(winPath)] = name
	f.original[strings.ToLower(winPath)] = winPath
	return nil
}

// rewrite points --flag=<Windows path> arguments at the temporary copies.
func (f *fileMap) rewrite(args []string) []string {
	out := make([]string, len(args))
	for i, arg := range args {
		out[i] = arg
		if name, value, ok := strings.Cut(arg, "="); ok {
			if tmp, known := f.paths[strings.ToLower(value)]; known {
				out[i] = name + "=" + tmp
			}
		} else if tmp, known := f.paths[strings.ToLower(arg)]; known {
			out[i] = tmp
		}
	}
	return out
}

// restore turns temporary paths in a rendered config back into what was written.
func (f *fileMap) restore(data []byte) []byte {
	text := string(data)
	for key, tmp := range f.paths {
		text = strings.ReplaceAll(text, jsonString(tmp), jsonString(f.original[key]))
	}
	// The kubelet resolves relative paths in its config file against the file's
	// directory; a Windows path is relative on Linux. Undo that for the output.
	text = strings.ReplaceAll(text, strings.TrimSuffix(jsonString(f.dir+"/"), "\""), "\"")
	return []byte(text)
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// changedFlags are the flags given, with temporary paths turned back into what was given.
func changedFlags(fs *pflag.FlagSet, files *fileMap) map[string]string {
	back := map[string]string{}
	for key, tmp := range files.paths {
		back[tmp] = files.original[key]
	}
	out := map[string]string{}
	fs.Visit(func(f *pflag.Flag) {
		value := f.Value.String()
		if original, ok := back[value]; ok {
			value = original
		}
		out[f.Name] = value
	})
	return out
}

// --- kubelet -------------------------------------------------------------------------------

// windowsKubeletFlags are the flags KubeletFlags.addOSFlags registers on Windows only
// (cmd/kubelet/app/options/osflags_windows.go).
func windowsKubeletFlags(fs *pflag.FlagSet) {
	fs.Bool("windows-service", false, "Enable Windows Service Control Manager API integration")
	fs.String("windows-priorityclass", "NORMAL_PRIORITY_CLASS",
		"Set the PriorityClass associated with kubelet process")
}

// windowsKubeletRules are validateKubeletOSConfiguration's errors on Windows
// (pkg/kubelet/apis/config/validation/validation_windows.go); the Linux build checks
// cgroup rules instead, which do not apply to a Windows kubelet.
func windowsKubeletRules(kc *kubeletconfig.KubeletConfiguration) error {
	if kc.SingleProcessOOMKill != nil {
		return fmt.Errorf("invalid configuration: singleProcessOOMKill is not supported on Windows")
	}
	if kc.UserNamespaces != nil {
		return fmt.Errorf("invalid configuration: userNamespaces is not supported on Windows")
	}
	return nil
}

// checkKubelet follows NewKubeletCommand's RunE (cmd/kubelet/app/server.go) up to the
// point where the kubelet would start running.
func checkKubelet(args []string, files *fileMap) (response, error) {
	fs := pflag.NewFlagSet("kubelet", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.SetNormalizeFunc(cliflag.WordSepNormalizeFunc)
	flags := kubeletoptions.NewKubeletFlags()
	kc, err := kubeletoptions.NewKubeletConfiguration()
	if err != nil {
		return response{}, err
	}
	flags.AddFlags(fs)
	windowsKubeletFlags(fs)
	kubeletoptions.AddKubeletConfigFlags(fs, kc)
	kubeletoptions.AddGlobalFlags(fs)
	fs.BoolP("help", "h", false, "help for kubelet")
	if err := fs.Parse(args); err != nil {
		return response{}, fmt.Errorf("failed to parse kubelet flag: %w", err)
	}
	if rest := fs.Args(); len(rest) > 0 {
		return response{}, fmt.Errorf("unknown command %+s", rest[0])
	}
	// The kubelet's own gate: k8s.io/kubernetes/pkg/features registers every gate on it.
	gate := utilfeature.DefaultMutableFeatureGate
	if err := gate.SetFromMap(kc.FeatureGates); err != nil {
		return response{}, fmt.Errorf("failed to set feature gates from initial flags-based config: %w", err)
	}
	if err := kubeletoptions.ValidateKubeletFlags(flags); err != nil {
		return response{}, fmt.Errorf("failed to validate kubelet flags: %w", err)
	}
	var warnings []string
	if flags.KubeletConfigFile != "" {
		// The loader falls back to lenient decoding with a logged warning
		// (pkg/kubelet/kubeletconfig/util/codec): say so in the verdict too.
		if data, err := os.ReadFile(flags.KubeletConfigFile); err == nil {
			if _, strict, e := kubeletscheme.NewSchemeAndCodecs(serializer.EnableStrict); e == nil {
				if _, _, derr := strict.UniversalDecoder().Decode(data, nil, nil); derr != nil &&
					runtime.IsStrictDecodingError(derr) {
					warnings = append(warnings, "Using lenient decoding as strict decoding failed: "+derr.Error())
				}
			}
		}
		loader, err := configfiles.NewFsLoader(&utilfs.DefaultFs{}, flags.KubeletConfigFile)
		if err == nil {
			kc, err = loader.Load(context.Background())
		}
		if err != nil {
			return response{}, fmt.Errorf("failed to load kubelet config file, path: %s, error: %w",
				flags.KubeletConfigFile, err)
		}
		// Flags win over the file (kubeletConfigFlagPrecedence): parse them again onto it.
		again := pflag.NewFlagSet("kubelet", pflag.ContinueOnError)
		again.SetOutput(io.Discard)
		again.SetNormalizeFunc(cliflag.WordSepNormalizeFunc)
		kubeletoptions.NewKubeletFlags().AddFlags(again)
		windowsKubeletFlags(again)
		original := kc.FeatureGates
		kubeletoptions.AddKubeletConfigFlags(again, kc)
		kubeletoptions.AddGlobalFlags(again)
		again.BoolP("help", "h", false, "")
		if err := again.Parse(args); err != nil {
			return response{}, fmt.Errorf("failed to precedence kubeletConfigFlag: %w", err)
		}
		for k, v := range original {
			if _, ok := kc.FeatureGates[k]; !ok {
				kc.FeatureGates[k] = v
			}
		}
		if err := gate.SetFromMap(kc.FeatureGates); err != nil {
			return response{}, fmt.Errorf("failed to set feature gates from initial flags-based config: %w", err)
		}
	}
	if err := logsapi.ValidateAndApplyAsField(&kc.Logging, gate, field.NewPath("logging")); err != nil {
		return response{}, fmt.Errorf("initialize logging: %v", err)
	}
	kc.FailCgroupV1 = false // a Linux rule (validation_linux.go); a Windows kubelet has no cgroups
	if err := kubeletvalidation.ValidateKubeletConfiguration(kc, gate); err != nil {
		return response{}, fmt.Errorf("failed to validate kubelet configuration, error: %w", err)
	}
	if err := windowsKubeletRules(kc); err != nil {
		return response{}, fmt.Errorf("failed to validate kubelet configuration, error: %w", err)
	}
	scheme, _, err := kubeletscheme.NewSchemeAndCodecs()
	if err != nil {
		return response{}, err
	}
	versioned := &kubeletv1beta1.KubeletConfiguration{}
	if err := scheme.Convert(kc, versioned, nil); err != nil {
		return response{}, err
	}
	data, err := json.Marshal(versioned)
	if err != nil {
		return response{}, err
	}
	return response{Config: files.restore(data), Flags: changedFlags(fs, files), Warnings: warnings}, nil
}

// --- kube-proxy ------------------------------------------------------------------------------

// windowsProxy holds the values of the flags Options.addOSFlags registers on Windows only
// (cmd/kube-proxy/app/init_windows.go).
type windowsProxy struct {
	service, dsr, forwardHealthCheck        bool
	sourceVip, networkName, rootHnsEndpoint string
}

func windowsProxyFlags(fs *pflag.FlagSet) *windowsProxy {
	w := &windowsProxy{}
	fs.BoolVar(&w.service, "windows-service", false, "Enable Windows Service Control Manager API integration")
	fs.StringVar(&w.sourceVip, "source-vip", "", "The IP address of the source VIP for non-DSR.")
	fs.StringVar(&w.networkName, "network-name", "", "The name of the cluster network.")
	fs.BoolVar(&w.dsr, "enable-dsr", false, "If true make kube-proxy apply DSR policies for service VIP")
	fs.StringVar(&w.rootHnsEndpoint, "root-hnsendpoint-name", "cbr0", "The name of the hns endpoint name for root namespace attached to l2bridge")
	fs.BoolVar(&w.forwardHealthCheck, "forward-healthcheck-vip", false, "If true forward service VIP for health check port")
	return w
}

func (w *windowsProxy) apply(fs *pflag.FlagSet, c *proxyconfig.KubeProxyConfiguration) {
	if fs.Changed("windows-service") {
		c.Windows.RunAsService = w.service
	}
	if fs.Changed("source-vip") {
		c.Winkernel.SourceVip = w.sourceVip
	}
	if fs.Changed("network-name") {
		c.Winkernel.NetworkName = w.networkName
	}
	if fs.Changed("enable-dsr") {
		c.Winkernel.EnableDSR = w.dsr
	}
	if fs.Changed("root-hnsendpoint-name") {
		c.Winkernel.RootHnsEndpointName = w.rootHnsEndpoint
	}
	if fs.Changed("forward-healthcheck-vip") {
		c.Winkernel.ForwardHealthCheckVip = w.forwardHealthCheck
	}
}

// windowsProxyDefaults is Options.platformApplyDefaults on Windows
// (cmd/kube-proxy/app/server_windows.go).
func windowsProxyDefaults(c *proxyconfig.KubeProxyConfiguration) {
	if c.Mode == "" {
		c.Mode = proxyconfig.ProxyModeKernelspace
	}
	if c.Winkernel.RootHnsEndpointName == "" {
		c.Winkernel.RootHnsEndpointName = "cbr0"
	}
}

// windowsProxyModes is validateProxyModeWindows (pkg/proxy/apis/config/validation).
func windowsProxyModes(mode proxyconfig.ProxyMode) error {
	if mode == "" || mode == proxyconfig.ProxyModeKernelspace {
		return nil
	}
	return field.Invalid(field.NewPath("KubeProxyConfiguration").Child("ProxyMode"), string(mode),
		"must be kernelspace or blank (blank means the most-available proxy [currently 'kernelspace'])")
}

// checkKubeProxy follows Options.AddFlags, Complete and Validate (cmd/kube-proxy/app).
func checkKubeProxy(args []string, files *fileMap) (response, error) {
	opts := kubeproxyapp.NewOptions()
	fs := pflag.NewFlagSet("kube-proxy", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.SetNormalizeFunc(cliflag.WordSepNormalizeFunc)
	opts.AddFlags(fs)
	windows := windowsProxyFlags(fs)
	if err := fs.Parse(args); err != nil {
		return response{}, err
	}
	var cfg *proxyconfig.KubeProxyConfiguration
	var warnings []string
	if opts.ConfigFile != "" {
		data, err := os.ReadFile(opts.ConfigFile)
		if err != nil {
			return response{}, err
		}
		// Options.loadConfig: strict first; on a strict-decoding error, the lenient
		// v1alpha1 decoder and a warning.
		obj, _, err := proxyscheme.Codecs.UniversalDecoder().Decode(data, nil, nil)
		if err != nil {
			if !runtime.IsStrictDecodingError(err) {
				return response{}, fmt.Errorf("failed to decode: %w", err)
			}
			lenient := runtime.NewScheme()
			if e := proxyconfig.AddToScheme(lenient); e != nil {
				return response{}, e
			}
			if e := proxyconfigv1alpha1.AddToScheme(lenient); e != nil {
				return response{}, e
			}
			codecs := serializer.NewCodecFactory(lenient, serializer.DisableStrict)
			var lenientErr error
			obj, _, lenientErr = codecs.UniversalDecoder().Decode(data, nil, nil)
			if lenientErr != nil {
				return response{}, fmt.Errorf("failed lenient decoding: %w", err)
			}
			warnings = append(warnings, "Using lenient decoding as strict decoding failed: "+err.Error())
		}
		c, ok := obj.(*proxyconfig.KubeProxyConfiguration)
		if !ok {
			return response{}, fmt.Errorf("failed to cast object to KubeProxyConfiguration, object: %T", obj)
		}
		cfg = c
	} else {
		versioned := &kubeproxyv1alpha1.KubeProxyConfiguration{}
		proxyscheme.Scheme.Default(versioned)
		internal, err := proxyscheme.Scheme.ConvertToVersion(versioned, proxyconfig.SchemeGroupVersion)
		if err != nil {
			return response{}, err
		}
		cfg = internal.(*proxyconfig.KubeProxyConfiguration)
		applyProxyFlags(fs, cfg)
	}
	windows.apply(fs, cfg)
	windowsProxyDefaults(cfg)
	mode := cfg.Mode
	cfg.Mode = "" // validated below by the Windows rule, not the Linux one
	var errs []error
	if err := proxyvalidation.Validate(cfg).ToAggregate(); err != nil {
		errs = append(errs, err)
	}
	if err := windowsProxyModes(mode); err != nil {
		errs = append(errs, err)
	}
	cfg.Mode = mode
	if len(errs) > 0 {
		return response{}, errors.Join(errs...)
	}
	versioned := &kubeproxyv1alpha1.KubeProxyConfiguration{}
	if err := proxyscheme.Scheme.Convert(cfg, versioned, nil); err != nil {
		return response{}, err
	}
	data, err := json.Marshal(versioned)
	if err != nil {
		return response{}, err
	}
	// The gates NewProxier consults (pkg/proxy/winkernel/proxier.go): their effective
	// values once the config's featureGates are applied to kube-proxy's gate.
	gate := utilfeature.DefaultMutableFeatureGate
	if err := gate.SetFromMap(cfg.FeatureGates); err != nil {
		return response{}, err
	}
	gates := map[string]bool{}
	for _, name := range []string{"WinDSR", "WinOverlay"} {
		gates[name] = gate.Enabled(featuregate.Feature(name))
	}
	return response{Config: files.restore(data), Flags: changedFlags(fs, files), Warnings: warnings,
		Gates: gates}, nil
}

// applyProxyFlags is what processV1Alpha1Flags and the flag bindings do without a config
// file: the flags that Options.AddFlags binds straight into its own config are set on a
// fresh one here by name, so a flag-only command line is judged too.
func applyProxyFlags(fs *pflag.FlagSet, cfg *proxyconfig.KubeProxyConfiguration) {
	set := func(name string, apply func(string)) {
		if f := fs.Lookup(name); f != nil && f.Changed {
			apply(f.Value.String())
		}
	}
	set("hostname-override", func(v string) { cfg.HostnameOverride = v })
	set("proxy-mode", func(v string) { cfg.Mode = proxyconfig.ProxyMode(v) })
	set("cluster-cidr", func(v string) { cfg.DetectLocal.ClusterCIDRs = strings.Split(v, ",") })
	set("kubeconfig", func(v string) { cfg.ClientConnection.Kubeconfig = v })
}

// --- kube-log-runner -------------------------------------------------------------------------

// checkKubeLogRunner parses with kube-log-runner's own flags (initFlags in
// k8s.io/component-base/logs/kube-log-runner/kube-log-runner.go, package main there, so
// declared again here with the same names, types and defaults) and applies its checks.
func checkKubeLogRunner(args []string) (response, error) {
	fs := flag.NewFlagSet("kube-log-runner", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	size := &resource.QuantityValue{}
	fs.Duration("flush-interval", 0, "")
	logFile := fs.String("log-file", "", "")
	fs.Var(size, "log-file-size", "")
	age := fs.Duration("log-file-age", 0, "")
	fs.Bool("also-stdout", false, "")
	fs.Bool("redirect-stderr", true, "")
	if err := fs.Parse(args); err != nil {
		return response{}, err
	}
	rest := fs.Args()
	if len(rest) == 0 {
		return response{}, fmt.Errorf("not enough arguments to run")
	}
	if size.Value() < 0 {
		return response{}, fmt.Errorf("log-file-size must be non-negative quantity")
	}
	if *age < 0 {
		return response{}, fmt.Errorf("log-file-age must be non-negative")
	}
	flags := map[string]string{}
	fs.Visit(func(f *flag.Flag) { flags[f.Name] = f.Value.String() })
	if *logFile != "" {
		flags["log-file"] = *logFile
	}
	return response{Flags: flags, Args: rest}, nil
}

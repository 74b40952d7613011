// pulumi-resource-docker, STAND-IN v5.2.0: a replacement for the official pulumi-docker provider on
// machines that cannot obtain it (get.pulumi.com unreachable, its Go module refused by the proxy). It
// covers only what this program uses, with the official names so the unmodified pulumi_docker Python
// SDK works:
//
//	docker:index/image:Image
//	  inputs  imageName, build{context, dockerfile, args, platform, target, network, addHosts,
//	          builderVersion, cacheFrom{images}}, registry{server, username, password}, skipPush,
//	          buildOnPreview
//	  outputs imageName, baseImageName, repoDigest, context, dockerfile, platform, registryServer
//
// It drives the `docker` CLI on PATH (DOCKER_HOST may point at podman's Docker-compatible API): `docker
// build` (classic builder unless builderVersion is BuilderBuildKit), then `docker push` (with registry
// credentials, if given, in a temporary DOCKER_CONFIG); repoDigest is the digest the registry reported
// for the push. Check stores a hash of the build context and Dockerfile as build.contextDigest,
// so a changed file (or any changed input) rebuilds and pushes in place (Update) and an unchanged one
// does nothing. .dockerignore is not interpreted: every file under the context is hashed. Delete leaves
// the image in the registry and the local store, as the official provider does.
// Where the official plugin can be downloaded, it is used instead (see ../README.md).
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/common/diag"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/provider"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"

	"sci.local/providers/internal/standin"
)

const imageType = "docker:index/image:Image"

type dockerProvider struct {
	standin.Base
	host *provider.HostClient
}

func main() {
	err := provider.Main("docker", func(host *provider.HostClient) (pulumirpc.ResourceProviderServer, error) {
		return &dockerProvider{Base: standin.Base{Name: "docker", Version: "5.2.0", SupportsPreview: true}, host: host}, nil
	})
	if err != nil {
		panic(err)
	}
}

func checkType(urn string) error {
	if t := resource.URN(urn).Type(); t != imageType {
		return fmt.Errorf("the stand-in docker provider does not implement %s", t)
	}
	return nil
}

// Check requires imageName and records build.contextDigest, the hash of the build context and Dockerfile.
func (p *dockerProvider) Check(_ context.Context, req *pulumirpc.CheckRequest) (*pulumirpc.CheckResponse, error) {
	if err := checkType(req.GetUrn()); err != nil {
		return nil, err
	}
	news, err := standin.Unmarshal(req.GetNews())
	if err != nil {
		return nil, err
	}
	var failures []*pulumirpc.CheckFailure
	if v := news["imageName"]; !v.ContainsUnknowns() && standin.Str(news, "imageName") == "" {
		failures = append(failures, &pulumirpc.CheckFailure{Property: "imageName", Reason: "imageName is required"})
	}
	if build := standin.Object(news, "build"); build != nil {
		delete(build, "contextDigest") // never trust a value from the program
		if !build["context"].ContainsUnknowns() && !build["dockerfile"].ContainsUnknowns() {
			ctxDir, dockerfile := paths(build)
			digest, err := hashContext(ctxDir, dockerfile)
			if err != nil {
				failures = append(failures, &pulumirpc.CheckFailure{Property: "build", Reason: err.Error()})
			} else {
				build["contextDigest"] = resource.NewStringProperty(digest)
			}
		}
	}
	inputs, err := standin.Marshal(news)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.CheckResponse{Inputs: inputs, Failures: failures}, nil
}

// Diff: any changed input (including the context digest) rebuilds and pushes the image in place.
func (p *dockerProvider) Diff(_ context.Context, req *pulumirpc.DiffRequest) (*pulumirpc.DiffResponse, error) {
	olds, err := standin.Unmarshal(standin.OldInputs(req))
	if err != nil {
		return nil, err
	}
	news, err := standin.Unmarshal(req.GetNews())
	if err != nil {
		return nil, err
	}
	return standin.DiffResponse(standin.ChangedKeys(olds, news), false), nil
}

func (p *dockerProvider) Create(ctx context.Context, req *pulumirpc.CreateRequest) (*pulumirpc.CreateResponse, error) {
	if err := checkType(req.GetUrn()); err != nil {
		return nil, err
	}
	outs, err := p.buildAndPush(ctx, resource.URN(req.GetUrn()), req.GetProperties(), req.GetPreview())
	if err != nil {
		return nil, err
	}
	id := ""
	if !req.GetPreview() {
		id = standin.Str(outs, "imageName")
	}
	props, err := standin.Marshal(outs)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.CreateResponse{Id: id, Properties: props}, nil
}

func (p *dockerProvider) Update(ctx context.Context, req *pulumirpc.UpdateRequest) (*pulumirpc.UpdateResponse, error) {
	outs, err := p.buildAndPush(ctx, resource.URN(req.GetUrn()), req.GetNews(), req.GetPreview())
	if err != nil {
		return nil, err
	}
	props, err := standin.Marshal(outs)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.UpdateResponse{Properties: props}, nil
}

// Delete leaves the pushed image alone (as the official provider does for Image).
func (p *dockerProvider) Delete(context.Context, *pulumirpc.DeleteRequest) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, nil
}

// paths resolves build.context (default ".") and build.dockerfile (default Dockerfile; a relative path
// is looked up inside the context first, then relative to the program's directory).
func paths(build resource.PropertyMap) (string, string) {
	ctxDir := standin.Str(build, "context")
	if ctxDir == "" {
		ctxDir = "."
	}
	ctxDir, _ = filepath.Abs(ctxDir)
	dockerfile := standin.Str(build, "dockerfile")
	if dockerfile == "" {
		dockerfile = "Dockerfile"
	}
	if !filepath.IsAbs(dockerfile) {
		if _, err := os.Stat(filepath.Join(ctxDir, dockerfile)); err == nil {
			dockerfile = filepath.Join(ctxDir, dockerfile)
		} else {
			dockerfile, _ = filepath.Abs(dockerfile)
		}
	}
	return ctxDir, dockerfile
}

// hashContext hashes every file under dir (path, mode, content or link target) and the Dockerfile.
func hashContext(dir, dockerfile string) (string, error) {
	h := sha256.New()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		info, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%o\x00", rel, info.Mode())
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			io.WriteString(h, target)
		case info.Mode().IsRegular():
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			if _, err := io.Copy(h, f); err != nil {
				return err
			}
		}
		h.Write([]byte{0})
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("hashing the build context %s: %w", dir, err)
	}
	df, err := os.ReadFile(dockerfile)
	if err != nil {
		return "", fmt.Errorf("reading the Dockerfile: %w", err)
	}
	h.Write([]byte("\x00dockerfile\x00"))
	h.Write(df)
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// registryServer is registry.server, else the registry host named by the image (docker.io if none).
func registryServer(in resource.PropertyMap, image string) string {
	if reg := standin.Object(in, "registry"); reg != nil && standin.Str(reg, "server") != "" {
		return standin.Str(reg, "server")
	}
	first, _, found := strings.Cut(image, "/")
	if found && (strings.ContainsAny(first, ".:") || first == "localhost") {
		return first
	}
	return "docker.io"
}

// repository is the image name without its tag or digest.
func repository(image string) string {
	image, _, _ = strings.Cut(image, "@")
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		image = image[:i]
	}
	return image
}

// buildAndPush returns the outputs: the inputs plus the Image outputs. In a preview nothing is built
// (unless buildOnPreview, which builds without pushing) and repoDigest is unknown.
func (p *dockerProvider) buildAndPush(ctx context.Context, urn resource.URN, props *structpb.Struct,
	preview bool) (resource.PropertyMap, error) {
	in, err := standin.Unmarshal(props)
	if err != nil {
		return nil, err
	}
	outs := in.Copy()
	image := standin.Str(in, "imageName")
	build := standin.Object(in, "build")
	if build == nil {
		build = resource.PropertyMap{}
	}
	ctxDir, dockerfile := paths(build)
	outs["imageName"] = in["imageName"]
	outs["baseImageName"] = in["imageName"]
	outs["context"] = resource.NewStringProperty(ctxDir)
	outs["dockerfile"] = resource.NewStringProperty(dockerfile)
	if v, ok := build["platform"]; ok {
		outs["platform"] = v
	}
	outs["registryServer"] = resource.NewStringProperty(registryServer(in, image))
	unknown := resource.MakeComputed(resource.NewStringProperty(""))
	outs["repoDigest"] = unknown
	if preview && !standin.Bool(in, "buildOnPreview", false) {
		return outs, nil
	}
	if in.ContainsUnknowns() {
		if preview {
			return outs, nil
		}
		return nil, fmt.Errorf("%s: inputs are still unknown", image)
	}

	// docker build
	args := []string{"build", "-t", image, "-f", dockerfile}
	if v := standin.Str(build, "platform"); v != "" {
		args = append(args, "--platform", v)
	}
	if v := standin.Str(build, "target"); v != "" {
		args = append(args, "--target", v)
	}
	if v := standin.Str(build, "network"); v != "" {
		args = append(args, "--network", v)
	}
	if v, ok := standin.Plain(build["addHosts"]); ok && v != nil {
		for _, h := range v.([]any) {
			args = append(args, "--add-host", fmt.Sprint(h))
		}
	}
	if cf := standin.Object(build, "cacheFrom"); cf != nil {
		if v, ok := standin.Plain(cf["images"]); ok && v != nil {
			for _, img := range v.([]any) {
				args = append(args, "--cache-from", fmt.Sprint(img))
			}
		}
	}
	if v, ok := standin.Plain(build["args"]); ok && v != nil {
		m := v.(map[string]any)
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			args = append(args, "--build-arg", fmt.Sprintf("%s=%v", k, m[k]))
		}
	}
	args = append(args, ctxDir)
	buildkit := "0"
	if standin.Str(build, "builderVersion") == "BuilderBuildKit" {
		buildkit = "1"
	}
	env := append(os.Environ(), "DOCKER_BUILDKIT="+buildkit)
	p.status(ctx, urn, "building "+image)
	if _, err := p.run(ctx, urn, env, nil, args...); err != nil {
		return nil, fmt.Errorf("docker build of %s failed: %w", image, err)
	}
	if preview || standin.Bool(in, "skipPush", false) {
		if !preview {
			outs["repoDigest"] = resource.NewStringProperty("")
		}
		return outs, nil
	}

	// push, with the registry credentials in a throw-away DOCKER_CONFIG
	if reg := standin.Object(in, "registry"); reg != nil && standin.Str(reg, "username") != "" {
		cfg, err := dockerConfig(registryServer(in, image), standin.Str(reg, "username"), standin.Str(reg, "password"))
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(cfg)
		env = append(env, "DOCKER_CONFIG="+cfg)
	}
	p.status(ctx, urn, "pushing "+image)
	out, err := p.run(ctx, urn, env, nil, "push", image)
	if err != nil {
		return nil, fmt.Errorf("docker push of %s failed: %w", image, err)
	}
	digest, err := pushedDigest(ctx, out, image)
	if err != nil {
		return nil, err
	}
	outs["repoDigest"] = resource.NewStringProperty(repository(image) + "@" + digest)
	return outs, nil
}

// dockerConfig writes a private DOCKER_CONFIG directory whose config.json holds the credentials for
// server, as `docker login` would store them. The docker CLI sends them with the push itself; a real
// `docker login` is not used because it makes the daemon ping the registry first, and podman's API does
// that over HTTPS even for a registry it is configured to reach over plain HTTP.
func dockerConfig(server, username, password string) (string, error) {
	dir, err := os.MkdirTemp("", "docker-config-")
	if err != nil {
		return "", err
	}
	auth := base64.StdEncoding.EncodeToString([]byte(username + ":" + password))
	cfg, _ := json.Marshal(map[string]any{"auths": map[string]any{server: map[string]string{"auth": auth}}})
	if err := os.WriteFile(filepath.Join(dir, "config.json"), cfg, 0o600); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

var digestLine = regexp.MustCompile(`digest: (sha256:[0-9a-f]{64})`)

// pushedDigest is the manifest digest the registry reported for the push (the last "digest: sha256:..."
// line of `docker push`), else the image's RepoDigests entry for its repository. Podman's local
// RepoDigests can differ from what the registry serves, hence the push output first.
func pushedDigest(ctx context.Context, pushOutput, image string) (string, error) {
	if m := digestLine.FindAllStringSubmatch(pushOutput, -1); m != nil {
		return m[len(m)-1][1], nil
	}
	out, err := exec.CommandContext(ctx, "docker", "image", "inspect", "--format", "{{json .RepoDigests}}", image).Output()
	if err != nil {
		return "", fmt.Errorf("docker image inspect %s: %w", image, err)
	}
	var digests []string
	_ = json.Unmarshal(out, &digests)
	for _, d := range digests {
		if repo, dg, ok := strings.Cut(d, "@"); ok && repo == repository(image) {
			return dg, nil
		}
	}
	return "", fmt.Errorf("no digest for %s after the push (push output: %q)", image, pushOutput)
}

// run runs the docker CLI, shows its output lines as the resource's status, and on failure returns an
// error holding the last lines of the output.
func (p *dockerProvider) run(ctx context.Context, urn resource.URN, env []string, stdin io.Reader,
	args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Env, cmd.Stdin = env, stdin
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	var all bytes.Buffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
		for sc.Scan() {
			all.WriteString(sc.Text() + "\n")
			if line := strings.TrimSpace(sc.Text()); line != "" {
				p.status(ctx, urn, line)
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	err := cmd.Start()
	if err == nil {
		err = cmd.Wait()
	}
	pw.Close()
	<-done
	if err != nil {
		return all.String(), fmt.Errorf("%v; last lines of `docker %s`:\n%s", err, args[0], tail(all.String(), 30))
	}
	return all.String(), nil
}

func (p *dockerProvider) status(ctx context.Context, urn resource.URN, msg string) {
	if p.host != nil {
		if len(msg) > 200 {
			msg = msg[:200] + "..."
		}
		_ = p.host.LogStatus(ctx, diag.Info, urn, msg)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

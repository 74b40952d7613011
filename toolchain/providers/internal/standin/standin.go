// Package standin holds what the two stand-in provider plugins share (see ../../README.md).
//
// STAND-IN: these plugins replace the official pulumi-resource-random and pulumi-resource-docker on
// machines that cannot obtain them (no get.pulumi.com, the Go module proxy refuses their modules). They
// cover only the resources and fields this program uses; where the official plugins can be downloaded,
// those are used instead.
package standin

import (
	"context"
	"fmt"
	"reflect"
	"sort"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"
)

// Base implements the provider-level calls: config is accepted and ignored, no schema, no invokes.
type Base struct {
	pulumirpc.UnimplementedResourceProviderServer
	Name, Version   string
	SupportsPreview bool // true: Create/Update are also called during previews (with Preview set)
}

func (b *Base) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: b.Version}, nil
}

// GetSchema: the engine does not need a schema to run a program that uses the published Python SDK.
func (b *Base) GetSchema(context.Context, *pulumirpc.GetSchemaRequest) (*pulumirpc.GetSchemaResponse, error) {
	return &pulumirpc.GetSchemaResponse{Schema: fmt.Sprintf(`{"name":%q,"version":%q}`, b.Name, b.Version)}, nil
}

func (b *Base) CheckConfig(_ context.Context, req *pulumirpc.CheckRequest) (*pulumirpc.CheckResponse, error) {
	return &pulumirpc.CheckResponse{Inputs: req.GetNews()}, nil
}

func (b *Base) DiffConfig(context.Context, *pulumirpc.DiffRequest) (*pulumirpc.DiffResponse, error) {
	return &pulumirpc.DiffResponse{Changes: pulumirpc.DiffResponse_DIFF_NONE}, nil
}

func (b *Base) Configure(context.Context, *pulumirpc.ConfigureRequest) (*pulumirpc.ConfigureResponse, error) {
	return &pulumirpc.ConfigureResponse{AcceptSecrets: true, SupportsPreview: b.SupportsPreview}, nil
}

func (b *Base) Cancel(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, nil
}

// Read returns the stored state unchanged (nothing is refreshed from the outside world).
func (b *Base) Read(_ context.Context, req *pulumirpc.ReadRequest) (*pulumirpc.ReadResponse, error) {
	return &pulumirpc.ReadResponse{Id: req.GetId(), Properties: req.GetProperties(), Inputs: req.GetInputs()}, nil
}

var opts = plugin.MarshalOptions{KeepUnknowns: true, KeepSecrets: true, SkipNulls: true}

// Unmarshal turns a gRPC struct into properties, keeping secrets and unknowns.
func Unmarshal(s *structpb.Struct) (resource.PropertyMap, error) {
	if s == nil {
		return resource.PropertyMap{}, nil
	}
	return plugin.UnmarshalProperties(s, opts)
}

// Marshal is the inverse of Unmarshal.
func Marshal(m resource.PropertyMap) (*structpb.Struct, error) {
	return plugin.MarshalProperties(m, opts)
}

// Plain is a property value as plain Go data (secrets unwrapped); ok=false if it holds an unknown.
func Plain(v resource.PropertyValue) (any, bool) {
	if v.ContainsUnknowns() {
		return nil, false
	}
	return plain(v), true
}

func plain(v resource.PropertyValue) any {
	switch {
	case v.IsSecret():
		return plain(v.SecretValue().Element)
	case v.IsOutput():
		return plain(v.OutputValue().Element)
	case v.IsArray():
		out := []any{}
		for _, e := range v.ArrayValue() {
			out = append(out, plain(e))
		}
		return out
	case v.IsObject():
		out := map[string]any{}
		for k, e := range v.ObjectValue() {
			out[string(k)] = plain(e)
		}
		return out
	}
	return v.Mappable()
}

// Str, Bool and Int read an optional top-level or nested property (secrets unwrapped).
func Str(m resource.PropertyMap, key string) string {
	if v, ok := Plain(m[resource.PropertyKey(key)]); ok {
		if s, ok := v.(string); ok {
			return s
		}
	}
	return ""
}

func Bool(m resource.PropertyMap, key string, def bool) bool {
	if v, ok := Plain(m[resource.PropertyKey(key)]); ok {
		if b, ok := v.(bool); ok {
			return b
		}
	}
	return def
}

func Int(m resource.PropertyMap, key string, def int) int {
	if v, ok := Plain(m[resource.PropertyKey(key)]); ok {
		if f, ok := v.(float64); ok {
			return int(f)
		}
	}
	return def
}

// Object reads a nested object property (secret or not); nil if absent or unknown.
func Object(m resource.PropertyMap, key string) resource.PropertyMap {
	v := m[resource.PropertyKey(key)]
	for v.IsSecret() {
		v = v.SecretValue().Element
	}
	if v.IsObject() {
		return v.ObjectValue()
	}
	return nil
}

// ChangedKeys lists the top-level input keys whose values differ (an unknown new value counts as a change).
// Secretness alone is not a change.
func ChangedKeys(olds, news resource.PropertyMap) []string {
	keys := map[resource.PropertyKey]bool{}
	for k := range olds {
		keys[k] = true
	}
	for k := range news {
		keys[k] = true
	}
	var changed []string
	for k := range keys {
		if k == "__defaults" {
			continue
		}
		o, _ := Plain(olds[k])
		n, known := Plain(news[k])
		if !known || !reflect.DeepEqual(o, n) {
			changed = append(changed, string(k))
		}
	}
	sort.Strings(changed)
	return changed
}

// DiffResponse builds the answer to Diff: changed keys are replacements if replace is true, else updates.
func DiffResponse(changed []string, replace bool) *pulumirpc.DiffResponse {
	if len(changed) == 0 {
		return &pulumirpc.DiffResponse{Changes: pulumirpc.DiffResponse_DIFF_NONE}
	}
	r := &pulumirpc.DiffResponse{Changes: pulumirpc.DiffResponse_DIFF_SOME, Diffs: changed,
		DetailedDiff: map[string]*pulumirpc.PropertyDiff{}, HasDetailedDiff: true}
	kind := pulumirpc.PropertyDiff_UPDATE
	if replace {
		r.Replaces = changed
		kind = pulumirpc.PropertyDiff_UPDATE_REPLACE
	}
	for _, k := range changed {
		r.DetailedDiff[k] = &pulumirpc.PropertyDiff{Kind: kind, InputDiff: true}
	}
	return r
}

// OldInputs picks the old inputs of a Diff request (older engines only send the old outputs).
func OldInputs(req *pulumirpc.DiffRequest) *structpb.Struct {
	if req.GetOldInputs() != nil {
		return req.GetOldInputs()
	}
	return req.GetOlds()
}

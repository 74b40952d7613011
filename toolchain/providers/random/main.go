// pulumi-resource-random, STAND-IN v4.21.4: a replacement for the official pulumi-random provider on
// machines that cannot obtain it (get.pulumi.com unreachable, its Go module refused by the proxy). It
// covers only what this program uses, with the official input/output names so the unmodified
// pulumi_random Python SDK works:
//
//	random:index/randomBytes:RandomBytes        inputs length, keepers; outputs base64, hex
//	random:index/randomPassword:RandomPassword  inputs length, special, upper, lower, numeric, number,
//	                                            minSpecial/minUpper/minLower/minNumeric, overrideSpecial,
//	                                            keepers; outputs result, bcryptHash
//
// As in the official provider every input forces a replacement, and the values come from crypto/rand.
// Where the official plugin can be downloaded, it is used instead (see ../README.md).
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math/big"

	"golang.org/x/crypto/bcrypt"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/provider"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/protobuf/types/known/emptypb"

	"sci.local/providers/internal/standin"
)

const (
	bytesType    = "random:index/randomBytes:RandomBytes"
	passwordType = "random:index/randomPassword:RandomPassword"
	// The official provider's default special characters.
	defaultSpecial = "!@#$%&*()-_=+[]{}<>:?"
)

type randomProvider struct{ standin.Base }

func main() {
	err := provider.Main("random", func(*provider.HostClient) (pulumirpc.ResourceProviderServer, error) {
		return &randomProvider{standin.Base{Name: "random", Version: "4.21.4"}}, nil
	})
	if err != nil {
		panic(err)
	}
}

// Check validates the inputs and fills in the official defaults, so they are stored with the state.
func (p *randomProvider) Check(_ context.Context, req *pulumirpc.CheckRequest) (*pulumirpc.CheckResponse, error) {
	news, err := standin.Unmarshal(req.GetNews())
	if err != nil {
		return nil, err
	}
	var failures []*pulumirpc.CheckFailure
	fail := func(prop, msg string) {
		failures = append(failures, &pulumirpc.CheckFailure{Property: prop, Reason: msg})
	}
	length := news["length"]
	if !length.IsComputed() && !length.IsOutput() {
		if n := standin.Int(news, "length", -1); n < 1 {
			fail("length", "length is required and must be at least 1")
		}
	}
	if req.GetType() == passwordType || resource.URN(req.GetUrn()).Type() == passwordType {
		for _, k := range []string{"special", "upper", "lower", "numeric", "number"} {
			if _, ok := news[resource.PropertyKey(k)]; !ok {
				news[resource.PropertyKey(k)] = resource.NewBoolProperty(true)
			}
		}
		for _, k := range []string{"minSpecial", "minUpper", "minLower", "minNumeric"} {
			if _, ok := news[resource.PropertyKey(k)]; !ok {
				news[resource.PropertyKey(k)] = resource.NewNumberProperty(0)
			}
		}
	}
	inputs, err := standin.Marshal(news)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.CheckResponse{Inputs: inputs, Failures: failures}, nil
}

// Diff: any change of an input replaces the resource (all inputs are ForceNew in the official provider).
func (p *randomProvider) Diff(_ context.Context, req *pulumirpc.DiffRequest) (*pulumirpc.DiffResponse, error) {
	olds, err := standin.Unmarshal(standin.OldInputs(req))
	if err != nil {
		return nil, err
	}
	news, err := standin.Unmarshal(req.GetNews())
	if err != nil {
		return nil, err
	}
	return standin.DiffResponse(standin.ChangedKeys(olds, news), true), nil
}

func (p *randomProvider) Create(_ context.Context, req *pulumirpc.CreateRequest) (*pulumirpc.CreateResponse, error) {
	inputs, err := standin.Unmarshal(req.GetProperties())
	if err != nil {
		return nil, err
	}
	outs := inputs.Copy()
	length := standin.Int(inputs, "length", 0)
	if length < 1 {
		return nil, fmt.Errorf("length must be at least 1")
	}
	var id string
	switch resource.URN(req.GetUrn()).Type() {
	case bytesType:
		b := make([]byte, length)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		outs["base64"] = resource.MakeSecret(resource.NewStringProperty(base64.StdEncoding.EncodeToString(b)))
		outs["hex"] = resource.MakeSecret(resource.NewStringProperty(hex.EncodeToString(b)))
		id = "none"
	case passwordType:
		pw, err := password(inputs, length)
		if err != nil {
			return nil, err
		}
		hash, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.DefaultCost)
		if err != nil {
			return nil, err
		}
		outs["result"] = resource.MakeSecret(resource.NewStringProperty(pw))
		outs["bcryptHash"] = resource.MakeSecret(resource.NewStringProperty(string(hash)))
		id = "none"
	default:
		return nil, fmt.Errorf("the stand-in random provider does not implement %s", resource.URN(req.GetUrn()).Type())
	}
	props, err := standin.Marshal(outs)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.CreateResponse{Id: id, Properties: props}, nil
}

// Update is never needed (every change is a replacement); Delete has nothing to remove.
func (p *randomProvider) Update(context.Context, *pulumirpc.UpdateRequest) (*pulumirpc.UpdateResponse, error) {
	return nil, fmt.Errorf("random resources are replaced, never updated")
}

func (p *randomProvider) Delete(context.Context, *pulumirpc.DeleteRequest) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, nil
}

// password follows the official algorithm: the minimum counts of each class first, then the rest from
// every enabled class, then a shuffle.
func password(in resource.PropertyMap, length int) (string, error) {
	special := defaultSpecial
	if s, ok := in["overrideSpecial"]; ok && !s.IsNull() {
		special = standin.Str(in, "overrideSpecial")
	}
	classes := []struct {
		on    bool
		chars string
		min   int
	}{
		{standin.Bool(in, "upper", true), "ABCDEFGHIJKLMNOPQRSTUVWXYZ", standin.Int(in, "minUpper", 0)},
		{standin.Bool(in, "lower", true), "abcdefghijklmnopqrstuvwxyz", standin.Int(in, "minLower", 0)},
		{standin.Bool(in, "numeric", true) && standin.Bool(in, "number", true), "0123456789", standin.Int(in, "minNumeric", 0)},
		{standin.Bool(in, "special", true), special, standin.Int(in, "minSpecial", 0)},
	}
	var all string
	var out []byte
	for _, c := range classes {
		if !c.on || c.chars == "" {
			continue
		}
		all += c.chars
		for i := 0; i < c.min; i++ {
			ch, err := pick(c.chars)
			if err != nil {
				return "", err
			}
			out = append(out, ch)
		}
	}
	if all == "" {
		return "", fmt.Errorf("every character class is disabled")
	}
	for len(out) < length {
		ch, err := pick(all)
		if err != nil {
			return "", err
		}
		out = append(out, ch)
	}
	for i := len(out) - 1; i > 0; i-- { // Fisher-Yates with crypto/rand
		j, err := rand.Int(rand.Reader, big.NewInt(int64(i+1)))
		if err != nil {
			return "", err
		}
		out[i], out[j.Int64()] = out[j.Int64()], out[i]
	}
	return string(out), nil
}

func pick(chars string) (byte, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(int64(len(chars))))
	if err != nil {
		return 0, err
	}
	return chars[n.Int64()], nil
}

package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/peerscale/peerscale/internal/leakcheck"
)

func TestDemo(t *testing.T) {
	leakcheck.Check(t)
	var out bytes.Buffer
	require.NoError(t, run(t.Context(), []string{"-messages", "3"}, &out))
	s := out.String()
	for _, want := range []string{
		"== alpha", "== beta", "== gamma",
		"view 3: [alpha beta gamma] leader alpha +gamma",
		"view 4: [alpha beta] leader alpha left -gamma",
		`agreed     from gamma  "gamma agreed #3"`,
		"45 messages sent, 135 copies delivered, 0 dropped",
	} {
		assert.Contains(t, s, want)
	}
	// Both survivors saw gamma leave.
	assert.Equal(t, 2, strings.Count(s, "left -gamma"), s)
}

func TestDemoBadFlags(t *testing.T) {
	var out bytes.Buffer
	assert.Error(t, run(t.Context(), []string{"-messages", "-1"}, &out))
	assert.Error(t, run(t.Context(), []string{"-nope"}, &out))
}

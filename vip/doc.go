// Package vip keeps a set of virtual IP addresses served by whichever
// members of a bus group are alive, after wackamole: no appliance, no
// single point of failure.
package vip

"""The flow observer: datapath events become Hubble-style flows, served over gRPC."""

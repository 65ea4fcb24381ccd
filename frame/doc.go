// Package frame owns every byte of coffer/1 that crosses the wire: the
// 3-byte frame header, the message types and their size limits, the CBOR
// bodies that travel inside the boxes, and the one strict decoder and one
// deterministic encoder used for all of them.
//
// A frame is a header followed by a body of 0..65535 bytes:
//
//	+--------+--------+--------+-------------------------+
//	| length (u16, BE)| type   | body (length bytes)     |
//	+--------+--------+--------+-------------------------+
//
// The types, their direction and the largest body each may carry:
//
//	Hello        0x00  client -> server   256 bytes
//	Link         0x01  server -> client   160 bytes
//	Get          0x02  client -> server  4096 bytes
//	OkGet        0x03  server -> client 65535 bytes
//	Bye          0x99  client -> server    64 bytes
//	KeyNotFound  0xaa  server -> client   160 bytes
//	Error        0xff  server -> client    64 bytes
//
// Any other type, and any length over the type's limit, is rejected after
// the three header bytes, before a body buffer is allocated.
// docs/protocol.md is the specification; this package holds no keys and
// opens no sockets.
package frame

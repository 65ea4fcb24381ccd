// Package frame owns every byte of coffer/2 that crosses the wire: the
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
//	Hello        0x00  client -> server  1536 bytes
//	Link         0x01  server -> client  1280 bytes
//	Get          0x02  client -> server  4096 bytes
//	OkGet        0x03  server -> client 65535 bytes
//	Bye          0x99  client -> server    64 bytes
//	KeyNotFound  0xaa  server -> client   160 bytes
//	Error        0xff  server -> client    64 bytes
//
// Hello's limit holds its 89-byte fixed part, the client's 1,184-byte
// ML-KEM-768 encapsulation key and a ~172-byte box (1,445 bytes); Link's,
// a nonce and a box holding the server's X25519 ephemeral and its
// 1,088-byte ML-KEM-768 ciphertext (1,216 bytes). Each limit leaves about
// 90 bytes of room and bounds what an unauthenticated peer can make the
// other side allocate (docs/protocol.md §2).
//
// Any other type, and any length over the type's limit, is rejected after
// the three header bytes, before a body buffer is allocated.
// docs/protocol.md is the specification; this package holds no keys and
// opens no sockets.
package frame

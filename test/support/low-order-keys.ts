// X25519 public keys no peer may have: the points of small order (identity, order 2, 4 and 8) in
// their canonical and non-canonical 32-byte encodings (u + p, and with bit 255 set, which X25519
// ignores). X25519 with any of them gives an all-zero secret. Hex from the well-known list
// (libsodium's blacklist, RFC 7748 §6.1's check), filtered to what a bit-255-masking X25519 sees.
export const LOW_ORDER_KEYS_HEX = [
  "0000000000000000000000000000000000000000000000000000000000000000", // 0
  "0100000000000000000000000000000000000000000000000000000000000000", // 1
  "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800", // order 8
  "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157", // order 8
  "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // p − 1 (order 2)
  "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // p ≡ 0
  "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // p + 1 ≡ 1
  "0000000000000000000000000000000000000000000000000000000000000080", // 0 with bit 255 set
  "0100000000000000000000000000000000000000000000000000000000000080", // 1 with bit 255 set
  "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b880", // order 8, bit 255 set
];

export const LOW_ORDER_KEYS: string[] = LOW_ORDER_KEYS_HEX.map((h) => Buffer.from(h, "hex").toString("base64"));

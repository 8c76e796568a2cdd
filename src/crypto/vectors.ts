// Published known-answer vectors. Used by the start-up self-test (select.ts) and the test suite.

const hex = (s: string) => new Uint8Array(Buffer.from(s.replace(/[\s:]/g, ""), "hex"));
const range = (from: number, n: number) => Uint8Array.from({ length: n }, (_, i) => from + i);
const SUNSCREEN = new TextEncoder().encode(
  "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
);

export interface AeadVector {
  key: Uint8Array;
  nonce: Uint8Array;
  aad: Uint8Array;
  plaintext: Uint8Array;
  /** ciphertext ‖ tag */
  sealed: Uint8Array;
}

/** RFC 8439 §2.8.2: AEAD_CHACHA20_POLY1305. */
export const RFC8439_AEAD: AeadVector = {
  key: range(0x80, 32),
  nonce: hex("07000000 4041424344454647"),
  aad: hex("50515253c0c1c2c3c4c5c6c7"),
  plaintext: SUNSCREEN,
  sealed: hex(`
    d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6
    3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36
    92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc
    3ff4def08e4b7a9de576d26586cec64b6116
    1ae10b594f09e26a7e902ecbd0600691`),
};

/** draft-irtf-cfrg-xchacha-03 §A.3.1: AEAD_XCHACHA20_POLY1305. */
export const XCHACHA_AEAD: AeadVector = {
  key: range(0x80, 32),
  nonce: range(0x40, 24),
  aad: hex("50515253c0c1c2c3c4c5c6c7"),
  plaintext: SUNSCREEN,
  sealed: hex(`
    bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb
    731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452
    2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9
    21f9664c97637da9768812f615c68b13b52e
    c0875924c1c7987947deafd8780acf49`),
};

// Configuration: wg-quick style files + environment overrides → one validated config.
export { ConfigError, MAX_CONFIG_BYTES, readConfigText } from "./wg-quick.ts";
export { DEFAULT_LISTEN_PORT, DEFAULT_MTU, filePeerLabel, filePeerOwner, parseConfig, type InterfaceConfig, type PeerConfig, type WireguardConfig } from "./schema.ts";
export { DEFAULT_GATEWAY_ADDRESS, clientConfigText, createPeer, newGatewayConfigText, nextFreeAddress, type ClientConfigSpec, type CreatedPeer, type NewPeer } from "./write.ts";
export { addressClashes, clashMessage, clashWith, type AddressClash, type AddressOwner } from "./overlap.ts";

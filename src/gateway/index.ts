// Firezone's gateway core: resources, authorizations with expiry, filters, the per-packet decision.
export { AccessPolicy, DENY_REASONS, type DecisionStep, type DenyReason, type Expired, type ExpiresAt, type Explanation } from "./policy.ts";
export { domainMatches, filtersAllow, filterText, matchingFilter, parseFilterText, parseResource, ResourceSchema, type Filter, type Resource } from "./resources.ts";
export { GatewayCore, ICMP_REPLIES_PER_SECOND, type GatewayDropReason, type GatewayEvent } from "./core.ts";
export { DnsNat, PROXY_IPS_PER_FAMILY, PROXY_V4, PROXY_V6, ProxyIpAllocator, type NatOutcome, type ProxyAssignment } from "./dns-nat.ts";
export { DnsResponder, PROXY_ANSWER_TTL, type DnsVerdict } from "./dns-responder.ts";
export { answerAddresses, buildAnswer, buildQuery, parseQuery, TYPE_A, TYPE_AAAA } from "./dns-message.ts";

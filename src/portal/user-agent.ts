// `{OS}/{version} {component}/{app_version} ({arch}; {kernel})` (`phoenix-channel/src/get_user_agent.rs`;
// the component is `gateway` since Firezone #10457, `connlib` before). The parenthetical holds the
// parts that are known, and non-ASCII is dropped as Firezone does before sending the header.
// Facts come in (src/io/system-facts.ts reads them) so the format is tested without a machine.

export interface SystemFacts {
  /** os_info's OS type: "Debian", "Ubuntu", "Alpine Linux"…; "Linux" when unknown. */
  os: string;
  /** "13", "22.04"…; "Unknown" when unknown (os_info's word). */
  osVersion: string;
  /** "x86_64", "aarch64" (uname -m); absent when unknown. */
  arch?: string;
  /** Kernel release (uname -r); absent when unknown. */
  kernel?: string;
}

export function userAgent(facts: SystemFacts, component: string, appVersion: string): string {
  const extra = [facts.arch, facts.kernel].filter((x): x is string => !!x);
  const text = `${facts.os}/${facts.osVersion} ${component}/${appVersion}${extra.length ? ` (${extra.join("; ")})` : ""}`;
  return text.replace(/[^\x20-\x7e]/g, "");
}

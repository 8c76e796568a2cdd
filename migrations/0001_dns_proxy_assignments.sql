CREATE TABLE `dns_proxy_assignments` (
	`domain` text PRIMARY KEY NOT NULL,
	`slot` integer NOT NULL,
	`v4` text NOT NULL,
	`v6` text NOT NULL,
	`created_at` integer DEFAULT (unixepoch('subsec') * 1000) NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `dns_proxy_assignments_slot_unique` ON `dns_proxy_assignments` (`slot`);
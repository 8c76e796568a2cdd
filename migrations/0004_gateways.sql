CREATE TABLE `gateways` (
	`gid` text PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`public_key` text NOT NULL,
	`endpoint` text,
	`version` text NOT NULL,
	`started_at` integer NOT NULL,
	`last_seen` integer NOT NULL
);
--> statement-breakpoint
ALTER TABLE `audit_events` ADD `gid` text;
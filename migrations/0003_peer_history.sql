CREATE TABLE `connection_ids` (
	`gid` text NOT NULL,
	`cid` integer NOT NULL,
	`public_key` text NOT NULL,
	`first_seen` integer NOT NULL,
	`last_seen` integer NOT NULL,
	PRIMARY KEY(`gid`, `cid`, `public_key`)
);
--> statement-breakpoint
CREATE INDEX `connection_ids_cid` ON `connection_ids` (`cid`);--> statement-breakpoint
CREATE INDEX `connection_ids_key` ON `connection_ids` (`public_key`);--> statement-breakpoint
CREATE TABLE `log_lines` (
	`id` integer PRIMARY KEY NOT NULL,
	`ts` integer NOT NULL,
	`level` integer NOT NULL,
	`target` text NOT NULL,
	`cid` integer,
	`gid` text,
	`rid` text,
	`public_key` text,
	`run` text NOT NULL,
	`seq` integer NOT NULL,
	`line` text NOT NULL
);
--> statement-breakpoint
CREATE INDEX `log_lines_ts` ON `log_lines` (`ts`);--> statement-breakpoint
CREATE INDEX `log_lines_cid` ON `log_lines` (`cid`);--> statement-breakpoint
CREATE INDEX `log_lines_key` ON `log_lines` (`public_key`);--> statement-breakpoint
CREATE TABLE `peer_identities` (
	`public_key` text PRIMARY KEY NOT NULL,
	`peer_id` text NOT NULL,
	`name` text,
	`source` text NOT NULL,
	`first_seen` integer NOT NULL,
	`last_seen` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `peer_identities_peer_id` ON `peer_identities` (`peer_id`);--> statement-breakpoint
-- One subject per peer in the audit trail, its public key (as connection.* and capture.* rows
-- already have), so one filter shows peer.* and connection.* rows together: older peer.* rows
-- named the store row id, and take the key from their own snapshot here.
UPDATE `audit_events` SET `subject` = coalesce(json_extract(`after`, '$.publicKey'), json_extract(`before`, '$.publicKey')) WHERE `action` IN ('peer.created', 'peer.updated', 'peer.deleted') AND coalesce(json_extract(`after`, '$.publicKey'), json_extract(`before`, '$.publicKey')) IS NOT NULL;

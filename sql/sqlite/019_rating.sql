-- Rating beyond the reference (docs/RATING.md).
-- The initial block of a bill type (DECISIONS §5): 0 means "the step", so a bill type
-- made before it, or without it, keeps the reference's rule and follows its step.
ALTER TABLE bill_types ADD COLUMN first_step INTEGER NOT NULL DEFAULT 0 CHECK (first_step >= 0);

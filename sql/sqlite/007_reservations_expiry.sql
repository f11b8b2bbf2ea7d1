-- The call path inserts and deletes a reservation per call; the expiry sweep runs every
-- 30 s over a table that holds only open calls. One index fewer to keep per call.
DROP INDEX reservations_expiry;

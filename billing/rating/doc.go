// Package rating is the in-memory hot path of call processing: it turns a dialled number into
// a direction, a tariff entry and a route, and prices calls exactly (DECISIONS §5).
//
// Everything here is pure and immutable once built. The database layer loads rows into
// [Direction], [Tariff], [Entry], [Route] and [BillType], builds a [Snapshot] with a
// [Builder], and publishes it through a [Live] holder; callPrepare and callFinish then read
// [Live.Load] without locks while a rebuilt snapshot replaces the old one atomically.
// Directions are best streamed into an [IndexBuilder] (about 24 bytes plus the code per
// row) rather than collected as a []Direction; [Snapshot.Edit] rebuilds a snapshot after a
// tariff or route change while sharing the index and every untouched tariff.
//
// Money is integer micro-units ([money.Micro]); multipliers use the same scale
// (1.2 = 1_200_000). No float is used anywhere: a call's charge is computed exactly and
// rounded half-up to a micro-unit once.
//
// Choices made where DECISIONS §5 is silent (the API layer and the docs rely on them):
//
//   - A direction whose MaxLen is 0 or negative has no upper length bound; a negative MinLen
//     counts as 0. CSV imports default an empty min_len to [DefaultMinLen] (0) and an empty
//     max_len to [DefaultMaxLen] (32).
//   - Codes are normalised like numbers; an empty code is ignored by [NewIndex] and rejected
//     by [ReadDirections]. When two directions carry the same code, the last one given wins
//     (the database upserts by code).
//   - A tariff whose bill type name is unknown to the snapshot (or empty) is billed
//     [ByMinute], the API's default bill type: calls keep flowing and the operator is never
//     undercharged by the fallback. [Quote.BillTypeFallback] reports it so it can be logged.
//   - The tariff whose entry priced the call (an option or the base tariff) also supplies the
//     multiplier, DID multiplier, switch price and bill type.
//   - Unknown tariff option IDs in sip_rates_options are skipped; an unknown base tariff is
//     [ErrUnknownTariff].
//   - An entry whose route is unknown to the snapshot counts as a disabled route.
//   - Multipliers are used as given: 0 means free. Loaders must fill the database default
//     1.00 ([money.One]).
package rating

-- Built-in payment methods (billing/payments.go). provider_ref is what the payment
-- provider calls the invoice: the Stripe Checkout Session id.
ALTER TABLE invoices ADD COLUMN provider_ref TEXT NOT NULL DEFAULT '';

-- One row per credited invoice, written in the transaction of its ledger row: the
-- primary key makes a repeated confirmation (a Stripe event delivered again, an
-- administrator's second payInvoice) credit nothing, and the unique ref makes one
-- Stripe session pay one invoice only.
CREATE TABLE invoice_payments (
    invoice_id BIGINT PRIMARY KEY,
    ref        TEXT NOT NULL UNIQUE,
    amount     BIGINT NOT NULL,
    paid_by    BIGINT,
    created_at BIGINT NOT NULL
);

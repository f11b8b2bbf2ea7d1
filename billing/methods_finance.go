package billing

// declareFinanceMethods declares invoices, payments and the periodic maintenance.
func (s *Service) declareFinanceMethods() {
	s.Methods.Add(
		// Finances and statistics
		method("getPaymentMethods", 0, s.getPaymentMethods),
		method("finishInvoice", 0, s.finishInvoice, "handler:string", "invoice:int"),
		method("createInvoice", 1, s.createInvoice, "payment_method:string", "payment_type:string", "payment_amount:money!"),
		method("generateInvoice", 1, s.generateInvoice, "invoice:int!", "date:string", "deadline:string", "services:string!"),
		method("monthlyInvoice", 1, s.monthlyInvoice, "month:int", "email:bool=true"),
		method("getInvoices", 1, s.getInvoices, "own:bool=true", "bank:bool=false", "done:bool"),
		method("getInvoiceInfo", 1, s.getInvoiceInfo, "invoice:int", "id:int"),
		method("viewInvoice", 1, s.viewInvoice, "invoice:int", "id:int"),
		method("deleteInvoice", 33, s.deleteInvoice, "invoice:int!"),
		// Technical maintenance
		method("doMaintenance", 90, s.doMaintenance),
	)
}

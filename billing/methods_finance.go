package billing

// declareFinanceMethods declares invoices, payments and the periodic maintenance.
func (s *Service) declareFinanceMethods() {
	s.Methods.Add(
		// Technical maintenance
		method("doMaintenance", 90, s.doMaintenance),
	)
}

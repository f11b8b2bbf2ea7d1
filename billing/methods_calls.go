package billing

// declareCallMethods declares the call-processing methods (callPrepare, callFinish and
// their companions).
func (s *Service) declareCallMethods() {
	s.Methods.Add()
}

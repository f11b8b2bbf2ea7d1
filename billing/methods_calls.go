package billing

// declareCallMethods declares the call-processing methods (callPrepare, callFinish and
// their companions).
func (s *Service) declareCallMethods() {
	prepare := method("callPrepare", 50, s.callPrepare, "callerid:string", "destination:string!", "prior:int=1",
		"from_originate:string", "source:string", "originated_by:string", "uniqueid:string", "is_did:string")
	prepare.AllowLocked = true // every refusal of a call is a Declined line
	finish := method("callFinish", 50, s.callFinish, "callerid:string", "destination:string!", "prior:int=1",
		"length:num=0", "status:string", "is_did:string", "uniqueid:string")
	finish.AllowLocked = true // a call in progress when its user is locked is still billed
	s.Methods.Add(
		prepare, finish,
	)
}

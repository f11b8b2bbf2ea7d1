package billing

// declareCallMethods declares the call-processing methods (callPrepare, callFinish and
// their companions), the event log and statistics.
func (s *Service) declareCallMethods() {
	prepare := method("callPrepare", 50, s.callPrepare, "callerid:string", "destination:string!", "prior:int=1",
		"from_originate:string", "source:string", "originated_by:string", "uniqueid:string", "is_did:string")
	prepare.AllowLocked = true // every refusal of a call is a Declined line
	finish := method("callFinish", 50, s.callFinish, "callerid:string", "destination:string!", "prior:int=1",
		"length:num=0", "status:string", "is_did:string", "uniqueid:string")
	finish.AllowLocked = true // a call in progress when its user is locked is still billed
	s.Methods.Add(
		// Directions and tarification
		method("resolveDirection", 0, s.resolveDirection, "number:string!", "select:ustring{id,code,direction}=direction"),
		// Call processing
		method("resolveCallerid", 0, s.resolveCallerid),
		prepare, finish,
		method("getTextBalance", 50, s.getTextBalance, "balance:num", "currency:string"),
		method("authorizeCall", 50, s.authorizeCall, "callerid:string", "auth:string"),
		method("authorizeRealm", 50, s.authorizeRealm, "source:string!", "auth:string!"),
		// Event log
		method("getLogs", 1, s.getLogs, "limit:int=100", "only_completed:bool=false", "resolve_info:bool=false", "user:string"),
		method("deleteLogs", 1, s.deleteLogs, "user:string"),
		// Statistics
		method("getStats", 1, s.getStats, "financials:bool=false", "statistic:bool=false", "date1:string", "date2:string"),
	)
}

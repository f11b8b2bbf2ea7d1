package billing

// declareAsteriskMethods declares the methods that reach Asterisk through its manager
// interface (asterisk_methods.go) and createTTS (scripts.go).
func (s *Service) declareAsteriskMethods() {
	s.Methods.Add(
		// Call processing
		method("createCallback", 1, s.createCallback, "callerid:string", "destination1:string!", "destination2:string!", "epitch:int"),
		method("createTTS", 50, s.createTTS, "text:string!", "lang:string"),
		// Data security
		method("flushBans", 22, s.flushBans),
		method("flushAllBans", 33, s.flushAllBans),
		method("closeChannels", 50, s.closeChannels),
		// Technical maintenance
		method("asteriskRequest", 22, s.asteriskRequest, "asterisk:string", "destination:string!", "process:string", "params:string"),
		method("updateDialplan", 33, s.updateDialplan, "asterisk:string", "url:string!"),
		method("restoreDialplan", 33, s.restoreDialplan, "asterisk:string"),
		method("updateInterface", 33, s.updateInterface, "asterisk:string", "url:string!"),
	)
}

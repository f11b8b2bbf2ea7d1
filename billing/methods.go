package billing

// declareMethods is the method table: each API method once, with the access level in
// brackets after its name in the reference, its arguments and its handler.
func (s *Service) declareMethods() {
	s.Methods.Add(
		// User
		method("getInfo", 1, s.getInfo),
		method("getValue", 1, s.getValue, "property:string!"),
		method("updateUser", 1, s.updateUser, "user:string", "web_password:string", "accesslevel:int",
			"active:int", "account:int", "currency:string", "language:string", "timezone:num", "rates:int",
			"allowed_rates:string", "allowed_call_len:int", "notify_email:string", "notify_balance:int",
			"notify_did:int", "notify_ticket:int", "notify_balance_limit:money", "invites:int", "comment:string"),
		// User control
		method("getUsers", 22, s.getUsers, "all:bool=false"),
		method("registerUser", 22, s.registerUser, "user:string!", "web_password:string!", "accesslevel:int=11",
			"sip_server:string", "sip_extension:string", "sip_password:string", "balance:money=0",
			"language:string="+s.Config.DefaultLanguage, "currency:string=EUR", "sip_srtp:bool=false", "account:string=auto"),
		method("deleteUser", 22, s.deleteUser, "user:string!"),
		// Accounts
		method("updateAccount", 1, s.updateAccount, "account:int", "balance:money", "overdraft:money",
			"refill_allowed:int", "billing_name:string", "billing_address:string", "billing_email:string",
			"billing_bank_account:string", "postpaid:int"),
		method("getAccounts", 22, s.getAccounts, "all:bool=false"),
		method("getAccountInfo", 22, s.getAccountInfo, "account:int!"),
		method("deleteAccount", 22, s.deleteAccount, "account:int!"),
		// Finances
		method("transferMoney", 1, s.transferMoney, "destination:string!", "amount:money!", "comment:string"),
		// Interface functions
		method("getCurrencies", 0, s.getCurrencies),
		method("getCourse", 0, s.getCourse, "currency:string"),
		method("updateCurrency", 44, s.updateCurrency, "currency:string!", "eur_course:num", "displayname:string",
			"transfer_fee:money", "referral_reward:money"),
		// API access
		method("getKey", 33, s.getKey, "name:string!"),
		method("getKeys", 33, s.getKeys),
		method("addKey", 33, s.addKey, "name:string!", "auth_by:string=username", "source:string=*", "apikey:string",
			"accessLevel:int=0", "default_user:string", "allowed_methods:string", "secure_only:int=0"),
		method("updateKey", 33, s.updateKey, "name:string!", "auth_by:string", "source:string", "apikey:string",
			"accesslevel:int", "accessLevel:int", "default_user:string", "default user:string", "allowed_methods:string",
			"secure_only:int", "enabled:int"),
		method("revokeKey", 33, s.revokeKey, "name:string!"),
		// Data security
		method("getBans", 22, s.getBans),
		method("banIP", 33, s.banIP, "source:string!", "target:string!", "reason:string"),
		method("unbanIP", 33, s.unbanIP, "id:int!"),
		method("updateBanPermanent", 33, s.updateBanPermanent, "id:int!", "state:bool!"),
	)
	s.declareCallMethods()
	s.declareTariffMethods()
	s.declareAsteriskMethods()
	s.declareMessagingMethods()
	s.declareContentMethods()
	s.declareFinanceMethods()
	s.declareDIDMethods()
}
